#!/usr/bin/env bash
# Runs every test of Ferrocket: the Rust workspace (unit, property, crash, protocol tests and
# the benches in criterion's test mode) and the interop tests that drive our broker with the
# official Apache RocketMQ C++ client (PyPI rocketmq==0.4.4) and a second client.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Python venv with the official client"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/interop/requirements.txt

echo "== cargo build"
cargo build --workspace --bins

echo "== cargo test (workspace, all targets; benches run once in test mode)"
cargo test --workspace --all-targets

echo "== interop tests (official C++ client through rocketmq==0.4.4)"
FERROCKET_BIN="$PWD/target/debug/ferrocket" .venv/bin/python -m pytest -q tests/interop
