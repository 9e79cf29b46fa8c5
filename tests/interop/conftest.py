"""Harness for the interop and black-box tests: starts `ferrocket standalone` on free loopback
ports, captures its log, and stops it (SIGTERM, then SIGKILL), with every wait bounded.

Build-free: the binary comes from FERROCKET_BIN (scripts/test.sh sets it to
target/debug/ferrocket); without it, target/debug/ferrocket under the repository is used if it
exists. HOME points at a per-session temporary directory, so the official C++ client's logs
(`$HOME/logs/rocketmq-cpp/<pid>_rocketmq-cpp.log.0`) and broadcasting offsets
(`$HOME/.rocketmq_offsets`) land there; a failing test prints the tails of both logs.
"""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Isolate the C++ client's files before anything loads librocketmq.
_SESSION_HOME = tempfile.mkdtemp(prefix="ferrocket-interop-home-")
os.environ["HOME"] = _SESSION_HOME

# Brokers inherit this: production runs with a high open-file limit (RocketMQ's scripts raise it).
try:
    import resource
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _soft != resource.RLIM_INFINITY and (_hard == resource.RLIM_INFINITY or _soft < _hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, _hard) if _hard != resource.RLIM_INFINITY else 65536, _hard))
except (ImportError, ValueError, OSError):
    pass

BOOT_TIMEOUT_S = float(os.environ.get("FERROCKET_BOOT_TIMEOUT", "60"))
STOP_TIMEOUT_S = 20.0

# broker.conf the harness always passes (a test's own keys win): small preallocated files, so a
# suite of ~80 brokers does not fill the disk (the defaults preallocate 1 GiB CommitLog segments
# and a ~420 MB IndexFile per broker), and a disk-full threshold a shared test machine does not
# reach by itself (test_diskfull.py uses a tmpfs of its own and Ferrocket's ratios).
DEFAULT_CONF = {
    "mappedFileSizeCommitLog": 64 << 20,
    "mappedFileSizeConsumeQueue": 30000 * 20,
    "maxHashSlotNum": 50000,
    "maxIndexNum": 200000,
    "diskSpaceWarningLevelRatio": 98,
    "diskSpaceCleanForciblyRatio": 97,
    "diskMaxUsedSpaceRatio": 96,
}


def ferrocket_bin():
    b = os.environ.get("FERROCKET_BIN") or os.path.join(REPO, "target", "debug", "ferrocket")
    if not os.path.isfile(b) or not os.access(b, os.X_OK):
        pytest.fail("ferrocket binary not found at %s: build it (cargo build -p ferrocket-server) "
                    "or set FERROCKET_BIN" % b, pytrace=False)
    return b


_HANDED_OUT = set()


def free_port():
    """A loopback port that is free now, with port-2 (RocketMQ's VIP channel) and port+1 free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p < 1100 or p > 65000 or _HANDED_OUT & {p - 2, p - 1, p, p + 1, p + 2}:
            continue
        ok = True
        for q in (p - 2, p + 1):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok:
            _HANDED_OUT.add(p)
            return p
    raise RuntimeError("no free port")


def unique(prefix):
    """A topic or group name no other test uses (RocketMQ charset)."""
    return "%s_%s" % (prefix, uuid.uuid4().hex[:12])


def _die_with_parent():
    # The broker must not outlive the test process (also when a forked test process crashes).
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path, n=80):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return "<no log: %s>" % e


class Broker:
    """One `ferrocket standalone` process (nameserver + broker)."""

    def __init__(self, workdir, store=None, flush=None, conf=None, namesrv_port=None,
                 broker_port=None, extra_args=None, env=None):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.store = store or os.path.join(workdir, "store")
        self.flush = flush
        self.conf = dict(DEFAULT_CONF)
        self.conf.update(conf or {})
        self.namesrv_port = namesrv_port or free_port()
        self.broker_port = broker_port or free_port()
        self.extra_args = list(extra_args or [])
        self.env = env
        self.proc = None
        self.starts = 0
        self.log_path = None
        self.logs = []

    @property
    def namesrv(self):
        return "127.0.0.1:%d" % self.namesrv_port

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.broker_port

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        cmd = [ferrocket_bin(), "standalone", "--store", self.store,
               "--namesrv-port", str(self.namesrv_port), "--broker-port", str(self.broker_port),
               "--broker-ip", "127.0.0.1"]
        if self.flush:
            cmd += ["--flush", self.flush]
        if self.conf:
            path = os.path.join(self.workdir, "broker.conf")
            with open(path, "w") as f:
                for k, v in self.conf.items():
                    f.write("%s=%s\n" % (k, v))
            cmd += ["-c", path]
        return cmd + self.extra_args

    def start(self, timeout=BOOT_TIMEOUT_S, expect_boot=True):
        assert not self.alive(), "broker already running"
        self.starts += 1
        self.log_path = os.path.join(self.workdir, "broker-%d.log" % self.starts)
        self.logs.append(self.log_path)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        if self.env:
            env.update(self.env)
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=env,
                                         preexec_fn=_die_with_parent)
        finally:
            logf.close()
        if expect_boot:
            self.wait_boot(timeout)
        return self

    def wait_boot(self, timeout=BOOT_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("ferrocket exited with %s during start; log tail:\n%s"
                                     % (self.proc.returncode, tail(self.log_path)))
            try:
                with open(self.log_path, "rb") as f:
                    # the broker's line, not the nameserver's (which comes before the store opens)
                    booted = any(b"boot success" in l and b"Name Server" not in l for l in f.read().splitlines())
            except OSError:
                booted = False
            if booted and port_open(self.broker_port) and port_open(self.namesrv_port):
                if self.proc.poll() is None:
                    return
            time.sleep(0.05)
        raise AssertionError("ferrocket did not print 'boot success' and listen within %.0fs; "
                             "log tail:\n%s" % (timeout, tail(self.log_path)))

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code (None if it was killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, **kw):
        self.stop()
        return self.start(**kw)

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_text(self):
        out = []
        for p in self.logs:
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def log_grep(self, pattern):
        return [l for l in self.log_text().splitlines() if re.search(pattern, l)]

    def describe_failure(self):
        parts = []
        for p in self.logs:
            parts.append("---- broker log %s (tail) ----\n%s" % (p, tail(p)))
        return "\n".join(parts)


def client_log_tails():
    d = os.path.join(os.environ.get("HOME", _SESSION_HOME), "logs", "rocketmq-cpp")
    out = []
    try:
        files = sorted(os.listdir(d))
    except OSError:
        return ""
    mine = [f for f in files if f.startswith("%d_" % os.getpid())] or files[-1:]
    for f in mine:
        out.append("---- C++ client log %s (tail) ----\n%s" % (f, tail(os.path.join(d, f), 40)))
    return "\n".join(out)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


class BrokerFactory:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.brokers = []

    def __call__(self, start=True, **kw):
        b = Broker(os.path.join(str(self.tmp_path), "broker%d" % len(self.brokers)), **kw)
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def teardown(self, failed):
        for b in self.brokers:
            try:
                b.stop()
            except Exception as e:  # never hide the test's own failure
                print("stopping broker failed: %r" % e)
        if failed:
            for b in self.brokers:
                print(b.describe_failure())
            print(client_log_tails())
        else:
            # free the disk now (stores are large); logs stay for a failing test only
            for b in self.brokers:
                shutil.rmtree(b.store, ignore_errors=True)


@pytest.fixture
def broker_factory(request, tmp_path):
    f = BrokerFactory(tmp_path)
    yield f
    f.teardown(_failed(request))


@pytest.fixture
def broker(broker_factory):
    """A fresh standalone broker (ASYNC_FLUSH defaults) with its own store."""
    return broker_factory()


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true", default=False,
                     help="run the long crash/hostile soak variants (or set FERROCKET_SOAK=1)")


def soak_enabled(config=None):
    if os.environ.get("FERROCKET_SOAK", "") not in ("", "0"):
        return True
    return bool(config and config.getoption("--soak"))


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: long variants, run with --soak or FERROCKET_SOAK=1")
    if "FERROCKET_STATS_FILE" not in os.environ:
        os.environ["FERROCKET_STATS_FILE"] = os.path.join(_SESSION_HOME, "stats.jsonl")


def record_stat(kind, **figures):
    """Append figures (seeds, cycles, messages checked, ...) for the end-of-run summary.
    Works from forked test processes: one JSON line per call, appended to a shared file."""
    import json
    line = json.dumps(dict(kind=kind, **figures), sort_keys=True)
    with open(os.environ.get("FERROCKET_STATS_FILE", os.path.join(_SESSION_HOME, "stats.jsonl")), "a") as f:
        f.write(line + "\n")


def pytest_terminal_summary(terminalreporter):
    import json
    path = os.environ.get("FERROCKET_STATS_FILE")
    if not path or not os.path.exists(path):
        return
    totals = {}
    with open(path) as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            k = d.pop("kind")
            t = totals.setdefault(k, {})
            for name, v in d.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    t[name] = t.get(name, 0) + v
                else:
                    t.setdefault(name, [])
                    if isinstance(t[name], list) and v not in t[name]:
                        t[name].append(v)
    terminalreporter.section("ferrocket black-box figures")
    for k in sorted(totals):
        terminalreporter.write_line("%s: %s" % (k, ", ".join("%s=%s" % kv for kv in sorted(totals[k].items()))))


def known_failures():
    """tests/interop/known_failures.txt: `<test name or node id substring>  # reason` per line.
    Listed tests still run; a failure is reported as xfail (with the reason), a pass as xpass."""
    path = os.path.join(os.path.dirname(__file__), "known_failures.txt")
    out = []
    try:
        with open(path) as f:
            for line in f:
                name, _, reason = line.partition("#")
                if name.strip():
                    out.append((name.strip(), reason.strip() or "known failure"))
    except OSError:
        pass
    return out


def pytest_collection_modifyitems(config, items):
    known = known_failures()
    for item in items:
        for name, reason in known:
            if name == item.name or name in item.nodeid:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
    if soak_enabled(config):
        return
    skip = pytest.mark.skip(reason="soak variant: run with FERROCKET_SOAK=1 or --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
