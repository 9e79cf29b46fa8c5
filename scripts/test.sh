#!/usr/bin/env bash
# Runs every test of Ferrocket: the Rust workspace (unit, property, crash, protocol tests and
# the benches in criterion's test mode), then the black-box tests in tests/interop that drive a
# real `ferrocket standalone` with the official Apache RocketMQ C++ client (PyPI rocketmq==0.4.4),
# a second client (crates.io rocketmq-client-rust, tests/rust-client) and raw sockets.
#
# Environment:
#   FERROCKET_SOAK=1          also run the long crash/hostile soak variants (minutes more)
#   FERROCKET_SKIP_RUST_CLIENT=1   do not build/run the rocketmq-client-rust check
#   PYTEST_ARGS="-k name"     extra arguments for pytest (e.g. to run one test)
# Exit code: non-zero if any step or any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
t_start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - t_start ))s)"; }

step "Python venv with the official client"
PY=python3
command -v python3.11 >/dev/null 2>&1 && PY=python3.11
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/interop/requirements.txt

step "cargo build"
cargo build --workspace --bins

# From here on every step runs even if an earlier one failed, so one CI log shows every failure;
# the script still exits non-zero if any step failed.
failed=()

step "cargo test (workspace, all targets; benches run once in test mode)"
if ! cargo test --workspace --all-targets; then
  failed+=("cargo test")
fi

RUST_CLIENT=""
if [ "${FERROCKET_SKIP_RUST_CLIENT:-0}" = "0" ]; then
  step "build the second client check (crates.io rocketmq-client-rust, tests/rust-client)"
  # A separate crate outside the workspace, with its own target dir (about 350 crates; 2.5 min
  # cold on an idle 2-core machine, seconds when cached).
  if (cd tests/rust-client && cargo build --locked -q); then
    RUST_CLIENT="$ROOT/tests/rust-client/target/debug/ferrocket-rust-client-check"
  else
    failed+=("rust-client build")
  fi
fi

step "interop and black-box tests (tests/interop)"
set +e
FERROCKET_BIN="$ROOT/target/debug/ferrocket" FERROCKET_RUST_CLIENT="$RUST_CLIENT" \
  .venv/bin/python -m pytest tests/interop ${PYTEST_ARGS:-}
rc=$?
set -e
# pytest: 0 all passed, 1 some failed, 2 interrupted, 3 internal error, 4 usage error,
# 5 no tests collected (a broken collection must not pass as green).
if [ "$rc" -ne 0 ]; then
  failed+=("interop tests (pytest exit $rc)")
fi

if [ "${#failed[@]}" -ne 0 ]; then
  step "FAILED: ${failed[*]}"
  exit 1
fi
step "all tests passed"
