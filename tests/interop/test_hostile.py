"""Hostile clients over raw sockets (issue 6, item 3).

Every case talks to a live broker with plain `socket`: random bytes, truncated frames, absurd
frame and header lengths, deep or huge JSON, invalid UTF-8, unknown codes, bad numbers, path-like
and oversized topic names, a thousand idle connections, absurd pulls. After each case the broker
process is alive, its RSS stays bounded, no file appeared outside its store directory, and a
normal send + pull (and, at the end, the official C++ client) still works.
"""

import json
import os
import random
import resource
import socket
import struct
import time

import pytest

import remoting as R
from clients import (Collector, make_message, make_producer, make_push_consumer, send_ok, send_sync_retrying,
                     shutdown_quietly, subscribe_status)
from conftest import record_stat, soak_enabled, unique

RSS_SLACK_KIB = 300 * 1024  # RSS may grow this much over the post-boot baseline, no more
CASES_RUN = []


def tree(root, skip):
    out = set()
    for r, ds, fs in os.walk(root):
        ds[:] = [d for d in ds if os.path.join(r, d) != skip]
        for n in ds + fs:
            out.add(os.path.relpath(os.path.join(r, n), root))
    return out


class Health:
    def __init__(self, broker):
        self.broker = broker
        self.root = os.path.dirname(os.path.dirname(broker.store))  # the test's tmp dir
        self.before = tree(self.root, broker.store)
        self.topic = unique("HealthT")
        self.n = 0
        self.check("boot")
        self.baseline = broker.rss_kib()

    def check(self, case):
        CASES_RUN.append(case)
        record_stat("hostile", checks=1)
        b = self.broker
        assert b.alive(), "broker died after %s:\n%s" % (case, b.describe_failure())
        rss = b.rss_kib()
        if getattr(self, "baseline", None) and rss is not None:
            assert rss < self.baseline + RSS_SLACK_KIB, \
                "RSS %d KiB after %s (baseline %d KiB)" % (rss, case, self.baseline)
        new = {p for p in tree(self.root, b.store) - self.before
               if not p.startswith(os.path.relpath(b.workdir, self.root) + "/broker-")}
        assert not new, "files appeared outside the store after %s: %r" % (case, sorted(new)[:20])
        # a normal producer and consumer still work
        self.n += 1
        body = ("health-%d-%s" % (self.n, case[:40])).encode("utf-8", "replace")
        with R.Conn(b.addr, timeout=10) as c:
            rep = R.send(c, self.topic, body, queue_id=0, tags="H", props={"n": str(self.n)})
            assert rep.code == R.SUCCESS, "send after %s: %r" % (case, rep)
            off = int(rep.ext["queueOffset"])
            got = R.read_queue(c, unique("HealthG"), self.topic, 0, start=off, end=off + 1)
            assert [r.body for r in got] == [body], "pull after %s: %r" % (case, got)


def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.broker_port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_and_drain(broker, data, wait=2.0):
    """Send bytes, then read whatever comes back until the broker closes or `wait` passes."""
    s = connect(broker)
    got = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            return got
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            got += chunk
            if len(got) > 64 << 20:
                break
            if len(got) >= 4 and len(got) >= 4 + struct.unpack(">i", got[:4])[0] >= 8:
                break  # one complete reply frame
    finally:
        s.close()
    return got


def frame_raw(header_bytes, body=b"", ser=0):
    return struct.pack(">ii", 4 + len(header_bytes) + len(body), (ser << 24) | len(header_bytes)) + header_bytes + body


def header(code, ext, opaque=7):
    return {"code": code, "language": "JAVA", "version": 401, "opaque": opaque, "flag": 0, "remark": "",
            "extFields": ext, "serializeTypeCurrentRPC": "JSON"}


def reply_of(data):
    """Decode the first reply frame in `data`, or None."""
    if len(data) < 8:
        return None
    total, hl = struct.unpack(">ii", data[:8])
    if total < 4 or len(data) < 4 + total:
        return None
    try:
        return json.loads(data[8:8 + (hl & 0xFFFFFF)].decode("utf-8"))
    except ValueError:
        return None


@pytest.fixture
def hostile(broker_factory):
    b = broker_factory()
    return b, Health(b)


def test_random_bytes(hostile):
    b, h = hostile
    rng = random.Random(6)
    for i, n in enumerate([1, 3, 4, 7, 8, 64, 1000, 65536]):
        send_and_drain(b, rng.randbytes(n), wait=0.5)
    h.check("random bytes")


@pytest.mark.parametrize("total", [0, 1, 3, -1, -(2 ** 31), 2 ** 31 - 1, (16 << 20) + 1, 1 << 30])
def test_absurd_frame_lengths(hostile, total):
    b, h = hostile
    send_and_drain(b, struct.pack(">i", total) + b"\x00\x00\x00\x10{}", wait=1.0)
    h.check("frame length %d" % total)


def test_truncated_frames(hostile):
    b, h = hostile
    full = R.encode_frame(header(R.SEND_MESSAGE, {"topic": h.topic}), b"x" * 100)
    for cut in (1, 4, 6, 8, 20, len(full) - 1):
        send_and_drain(b, full[:cut], wait=0.3)
    h.check("truncated frames")


@pytest.mark.parametrize("hl", [-1, 2 ** 24 - 1, 1000, 0, 2 ** 31 - 1])
def test_header_length_past_frame(hostile, hl):
    b, h = hostile
    hdr = json.dumps(header(R.GET_MAX_OFFSET, {"topic": "x", "queueId": "0"})).encode()
    send_and_drain(b, struct.pack(">ii", 4 + len(hdr), hl) + hdr, wait=0.5)
    h.check("header length %d" % hl)


def test_binary_serialize_type_garbage(hostile):
    b, h = hostile
    rng = random.Random(9)
    for n in (0, 1, 10, 100):
        send_and_drain(b, frame_raw(rng.randbytes(n), ser=1), wait=0.3)
    h.check("ROCKETMQ serialize type with garbage")


def test_deep_and_huge_json(hostile):
    b, h = hostile
    deep = b'{"code":' + b"[" * 100000 + b"]" * 100000 + b"}"
    send_and_drain(b, frame_raw(deep), wait=1.0)
    deep_obj = b'{"code":10,"extFields":' + b'{"a":' * 50000 + b"1" + b"}" * 50000 + b"}"
    send_and_drain(b, frame_raw(deep_obj), wait=1.0)
    huge = json.dumps(header(R.SEND_MESSAGE, {"topic": h.topic, "k": "v" * (8 << 20)})).encode()
    send_and_drain(b, frame_raw(huge, b"body"), wait=3.0)
    many = json.dumps(header(R.SEND_MESSAGE, {"k%d" % i: "v" for i in range(200000)})).encode()
    send_and_drain(b, frame_raw(many, b"body"), wait=3.0)
    h.check("deep/huge JSON")


def test_invalid_utf8(hostile):
    b, h = hostile
    raw = json.dumps(header(R.SEND_MESSAGE, {
        "producerGroup": "PG", "topic": "TOPICMARK", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
        "queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0",
        "properties": "PROPMARK", "reconsumeTimes": "0", "unitMode": "false", "batch": "false"})).encode()
    for topic, props in [(b"T\xff\xfe", b"TAGS\x01a\x02"), (b"Tok" + b"\xc3", b"TAGS\x01\xff\x02"),
                         (unique("Utf").encode(), b"KEYS\x01\xed\xa0\x80\x02"),
                         (unique("Utf").encode(), b"\\ud800\x01x\x02")]:
        data = raw.replace(b"TOPICMARK", topic).replace(b"PROPMARK", props)
        rep = reply_of(send_and_drain(b, frame_raw(data, b"payload"), wait=1.0))
        if rep is not None and b"\xff" in topic:
            assert rep.get("code") != R.SUCCESS, "a topic with invalid UTF-8 was accepted: %r" % rep
    h.check("invalid UTF-8")


@pytest.mark.parametrize("code", [9999, -1, 2 ** 31 - 1, 0, 65535])
def test_unknown_request_codes(hostile, code):
    b, h = hostile
    rep = reply_of(send_and_drain(b, R.encode_frame(header(code, {})), wait=2.0))
    assert rep is not None, "no reply to unknown request code %d" % code
    assert rep.get("code") != R.SUCCESS, "unknown code %d answered SUCCESS: %r" % (code, rep)
    assert rep.get("opaque") == 7 and rep.get("flag", 0) & 1
    h.check("unknown code %d" % code)


BAD_NUMBERS = ["abc", "", "-1", "99999999999999999999999", "1e99", "0x10", " 1", "NaN", "-9223372036854775809",
               "2147483648", None, [], {"a": 1}, 1.5, True]


def test_bad_numbers_in_ext_fields(hostile):
    b, h = hostile
    with R.Conn(b.addr) as c:
        R.send(c, h.topic, b"seed", queue_id=0)
    base_send = {"producerGroup": "PG", "topic": h.topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
                 "queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0", "properties": "",
                 "reconsumeTimes": "0", "unitMode": "false", "batch": "false"}
    base_pull = {"consumerGroup": "G", "topic": h.topic, "queueId": "0", "queueOffset": "0", "maxMsgNums": "32",
                 "sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*",
                 "subVersion": "0"}
    n = 0
    for code, base in [(R.SEND_MESSAGE, base_send), (R.PULL_MESSAGE, base_pull),
                       (R.QUERY_CONSUMER_OFFSET, {"consumerGroup": "G", "topic": h.topic, "queueId": "0"}),
                       (R.UPDATE_CONSUMER_OFFSET, {"consumerGroup": "G", "topic": h.topic, "queueId": "0",
                                                   "commitOffset": "0"}),
                       (R.GET_MAX_OFFSET, {"topic": h.topic, "queueId": "0"})]:
        for field in base:
            if field in ("topic", "consumerGroup", "producerGroup", "subscription", "properties", "defaultTopic"):
                continue
            for bad in BAD_NUMBERS:
                ext = dict(base)
                ext[field] = bad
                send_and_drain(b, R.encode_frame(header(code, ext), b"body" if code == R.SEND_MESSAGE else b""),
                               wait=0.3 if code != R.PULL_MESSAGE else 1.0)
                n += 1
    h.check("bad numbers (%d requests)" % n)


HOSTILE_TOPICS = ["../../x", "../x", "..", ".", "a/b", "/abs", "x\x00y", "T" * 10000, "", " ", "con\\x",
                  "%RETRY%../../y", "topic\n", "\u00e9t\u00e9", "a" * 256]


def test_hostile_topic_names(hostile):
    b, h = hostile
    with R.Conn(b.addr) as c:
        for t in HOSTILE_TOPICS:
            rep = R.send(c, t, b"evil", queue_id=0)
            assert rep.code != R.SUCCESS, "SEND to topic %r accepted" % t[:50]
            rep = c.call(R.UPDATE_AND_CREATE_TOPIC, {"topic": t, "defaultTopic": "TBW102", "readQueueNums": "4",
                                                     "writeQueueNums": "4", "perm": "6", "topicFilterType": "SINGLE_TAG",
                                                     "topicSysFlag": "0", "order": "false"})
            assert rep.code != R.SUCCESS, "UPDATE_AND_CREATE_TOPIC %r accepted" % t[:50]
            R.pull(c, "G", t, 0, 0)
            c.call(R.UPDATE_CONSUMER_OFFSET, {"consumerGroup": t, "topic": h.topic, "queueId": "0",
                                              "commitOffset": "1"})
            c.call(R.UPDATE_CONSUMER_OFFSET, {"consumerGroup": "G", "topic": t, "queueId": "0", "commitOffset": "1"})
            hb = {"clientID": "evil", "consumerDataSet": [{"groupName": t, "consumeFromWhere": 0, "consumeType": 1,
                                                           "messageModel": 1, "subscriptionDataSet": [
                                                               {"subString": "*", "subVersion": "1", "topic": t}]}]}
            c.call(R.HEART_BEAT, {}, json.dumps(hb).encode())
    # the nameserver too
    with R.Conn(b.namesrv) as c:
        for t in HOSTILE_TOPICS:
            c.call(R.GET_ROUTEINFO_BY_TOPIC, {"topic": t})
    # let the periodic persisters run (consumer offsets are flushed on a timer)
    time.sleep(1.0)
    for t in ("../../x", "../x", "%RETRY%../../y"):
        for base in (b.store, os.path.join(b.store, "consumequeue"), os.path.join(b.store, "config"),
                     os.path.join(b.store, "index"), b.workdir):
            p = os.path.normpath(os.path.join(base, t))
            if os.path.basename(p) in ("x", "y"):
                assert not os.path.exists(p), "topic %r created %s" % (t, p)
    h.check("hostile topic names")


def test_thousand_idle_connections(hostile):
    b, h = hostile
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    n = min(1000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100)
    socks = []
    try:
        deadline = time.monotonic() + 30
        for _ in range(n):
            if time.monotonic() > deadline:
                break
            try:
                socks.append(socket.create_connection(("127.0.0.1", b.broker_port), timeout=2))
            except OSError:
                break
        assert len(socks) >= min(n, 900), "only %d connections accepted" % len(socks)
        h.check("%d idle connections open" % len(socks))
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    h.check("after closing %d idle connections" % len(socks))


def test_absurd_pulls(hostile):
    b, h = hostile
    with R.Conn(b.addr, timeout=20) as c:
        for i in range(3):
            R.send(c, h.topic, b"p%d" % i, queue_id=1)
        for off, n in [(-1, 32), (2 ** 63 - 1, 32), (-(2 ** 63), 32), (0, 2 ** 31 - 1), (0, 0), (0, -5),
                       (1, 100000), (10 ** 12, 1)]:
            rep = R.pull(c, "AbsurdG", h.topic, 1, off, n)
            if rep.code == R.SUCCESS:
                recs = R.decode_records(rep.body)
                assert len(recs) <= 3 and all(r.body.startswith(b"p") for r in recs)
        for qid in (-1, 4, 2 ** 31 - 1, 65536):
            rep = R.pull(c, "AbsurdG", h.topic, qid, 0, 32)
            assert rep.code != R.SUCCESS, "pull from queue %d answered with messages" % qid
    h.check("absurd pulls")


def test_official_client_after_abuse(hostile):
    """After a mix of abuse on one broker, the official client still produces and consumes."""
    b, h = hostile
    rng = random.Random(99)
    rounds = 50 if soak_enabled() else 5
    for i in range(rounds):
        send_and_drain(b, rng.randbytes(rng.randrange(1, 5000)), wait=0.1)
        send_and_drain(b, struct.pack(">i", rng.choice([0, -1, 2 ** 31 - 1])), wait=0.1)
    h.check("mixed abuse")
    topic, pg, cg = unique("AfterT"), unique("PG"), unique("CG")
    p = make_producer(b.namesrv, pg)
    c = make_push_consumer(b.namesrv, cg)
    col = Collector()
    try:
        bodies = {}
        for i in range(10):
            body = b"after-abuse-%d" % i
            assert send_ok(send_sync_retrying(p, make_message(topic, body, "T", "k%d" % i, {"seq": str(i)})))
            bodies[i] = body
        subscribe_status(c, topic, col)
        c.start()
        items = col.wait_for(lambda s: len({g.props["seq"] for g in s}) >= 10, 60)
        assert {int(g.props["seq"]): g.body for g in items} == bodies
    finally:
        shutdown_quietly(c, p)
