#!/usr/bin/env python3
"""In-memory stand-in for `ferrocket standalone`, for checking the test harness and the C++
client's behaviour before (or independently of) the real broker, and for logging the exact
frames the official clients send (`--wire-log FILE`).

It accepts the same command line as `ferrocket standalone` (`--store`, `--namesrv-port`,
`--broker-port`, `--broker-ip`, `--flush`, `-c`), keeps everything in memory, and answers the
codes the C++ client uses. It is NOT a reference implementation: no persistence, no delay
levels (retries are redelivered after ~1 s), minimal validation. Run the interop suite against
it with `FERROCKET_BIN=tests/interop/mockbroker.py`; the crash/corruption/disk tests need the
real broker and fail against it.
"""

import argparse
import json
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, __import__("os").path.dirname(__file__))
import remoting as R  # noqa: E402

LOCK = threading.Condition()
QUEUES = {}  # (topic, qid) -> list of record bytes
PROPS = {}   # (topic, qid) -> list of (tags)
OFFSETS = {}  # (group, topic, qid) -> offset
CLIENTS = {}  # group -> {clientID: conn}
PHY = [0]
WIRE = None
ARGS = None


def log_frame(direction, peer, header, body):
    if WIRE is None:
        return
    with LOCK:
        WIRE.write("%s %s %s body=%d %r\n" % (direction, peer, json.dumps(header), len(body),
                                             body[:3000]))
        WIRE.flush()


def nqueues(topic):
    return 1 if topic.startswith("%RETRY%") or topic.startswith("%DLQ%") else 4


def route_body(topic):
    b = {"orderTopicConf": "", "queueDatas": [{"brokerName": "broker-a", "readQueueNums": nqueues(topic),
                                               "writeQueueNums": nqueues(topic), "perm": 6, "topicSysFlag": 0}],
         "brokerDatas": [{"cluster": "DefaultCluster", "brokerName": "broker-a",
                          "brokerAddrs": {"0": "%s:%d" % (ARGS.broker_ip, ARGS.broker_port)},
                          "enableActingMaster": False}],
         "filterServerTable": {}}
    return json.dumps(b).encode()


def encode_record(topic, qid, qo, body, props, sys_flag, born_ts, reconsume=0):
    topic_b = topic.encode()
    props_b = R.encode_properties(props).encode()
    phy = PHY[0]
    size = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + len(body) + 1 + len(topic_b) + 2 + len(props_b)
    rec = struct.pack(">iiiiiqqiq", size, -626843481, zlib.crc32(body) & 0x7FFFFFFF, qid, 0, qo, phy,
                      sys_flag, born_ts)
    rec += socket.inet_aton("127.0.0.1") + struct.pack(">i", 40000)
    rec += struct.pack(">q", int(time.time() * 1000))
    rec += socket.inet_aton(ARGS.broker_ip) + struct.pack(">i", ARGS.broker_port)
    rec += struct.pack(">iq", reconsume, 0)
    rec += struct.pack(">i", len(body)) + body + bytes([len(topic_b)]) + topic_b
    rec += struct.pack(">h", len(props_b)) + props_b
    assert len(rec) == size
    PHY[0] += size
    return rec


def put(topic, qid, body, props, sys_flag, born_ts, reconsume=0):
    with LOCK:
        q = QUEUES.setdefault((topic, qid), [])
        qo = len(q)
        q.append(encode_record(topic, qid, qo, body, props, sys_flag, born_ts, reconsume))
        PROPS.setdefault((topic, qid), []).append(props.get("TAGS", ""))
        LOCK.notify_all()
        return qo, PHY[0]


def matches(expr, tag):
    expr = (expr or "*").strip()
    if expr in ("", "*"):
        return True
    return tag in [t.strip() for t in expr.split("||")]


def ext_int(ext, k, d=0):
    v = ext.get(k, d)
    try:
        return int(v)
    except (TypeError, ValueError):
        return d


class Handler(socketserver.BaseRequestHandler):
    def reply(self, req, code=0, ext=None, body=b"", remark=None):
        h = {"code": code, "language": "JAVA", "version": 401, "opaque": req.get("opaque"), "flag": 1,
             "remark": remark, "extFields": {k: str(v) for k, v in (ext or {}).items()},
             "serializeTypeCurrentRPC": "JSON"}
        log_frame("<<", self.client_address, h, body)
        with self.wlock:
            self.request.sendall(R.encode_frame(h, body))

    def handle(self):
        self.wlock = threading.Lock()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                raw = R.recv_exact(self.request, 4)
                (total,) = struct.unpack(">i", raw)
                if total < 4 or total > 64 << 20:
                    return
                data = R.recv_exact(self.request, total)
                (hl,) = struct.unpack(">i", data[:4])
                hlen = hl & 0xFFFFFF
                req = json.loads(data[4:4 + hlen].decode("utf-8"))
                body = data[4 + hlen:]
                log_frame(">>", self.client_address, req, body)
                if req.get("flag", 0) & 1:
                    continue
                threading.Thread(target=self.dispatch, args=(req, body), daemon=True).start()
        except (R.RemotingError, OSError, ValueError):
            return

    def dispatch(self, req, body):
        code = req.get("code")
        ext = req.get("extFields") or {}
        if code == R.GET_ROUTEINFO_BY_TOPIC:
            return self.reply(req, 0, {}, route_body(ext.get("topic", "")))
        if code in (R.SEND_MESSAGE, R.SEND_MESSAGE_V2):
            if code == R.SEND_MESSAGE_V2:
                ext = {"topic": ext.get("b"), "queueId": ext.get("e"), "sysFlag": ext.get("f"),
                       "bornTimestamp": ext.get("g"), "properties": ext.get("i"),
                       "reconsumeTimes": ext.get("j")}
            props = R.decode_properties(ext.get("properties", ""))
            qid = ext_int(ext, "queueId")
            qo, _ = put(ext["topic"], qid, body, props, ext_int(ext, "sysFlag"), ext_int(ext, "bornTimestamp"))
            return self.reply(req, 0, {"msgId": props.get("UNIQ_KEY", ""), "queueId": qid, "queueOffset": qo})
        if code == R.HEART_BEAT:
            hb = json.loads(body.decode("utf-8"))
            with LOCK:
                for c in hb.get("consumerDataSet") or []:
                    CLIENTS.setdefault(c["groupName"], {})[hb["clientID"]] = self
            return self.reply(req, 0)
        if code == R.UNREGISTER_CLIENT:
            with LOCK:
                CLIENTS.get(ext.get("consumerGroup", ""), {}).pop(ext.get("clientID"), None)
            return self.reply(req, 0)
        if code == R.GET_CONSUMER_LIST_BY_GROUP:
            with LOCK:
                ids = sorted(CLIENTS.get(ext.get("consumerGroup", ""), {}))
            return self.reply(req, 0, {}, json.dumps({"consumerIdList": ids}).encode())
        if code == R.QUERY_CONSUMER_OFFSET:
            k = (ext.get("consumerGroup"), ext.get("topic"), ext_int(ext, "queueId"))
            with LOCK:
                if k in OFFSETS:
                    return self.reply(req, 0, {"offset": OFFSETS[k]})
            return self.reply(req, 0, {"offset": 0})
        if code == R.UPDATE_CONSUMER_OFFSET:
            k = (ext.get("consumerGroup"), ext.get("topic"), ext_int(ext, "queueId"))
            with LOCK:
                OFFSETS[k] = ext_int(ext, "commitOffset")
            return self.reply(req, 0)
        if code in (R.GET_MAX_OFFSET, R.GET_MIN_OFFSET):
            with LOCK:
                n = len(QUEUES.get((ext.get("topic"), ext_int(ext, "queueId")), []))
            return self.reply(req, 0, {"offset": n if code == R.GET_MAX_OFFSET else 0})
        if code == R.PULL_MESSAGE:
            return self.pull(req, ext)
        if code == 41:  # LOCK_BATCH_MQ
            b = json.loads(body.decode("utf-8"))
            return self.reply(req, 0, {}, json.dumps({"lockOKMQSet": b.get("mqSet", [])}).encode())
        if code == 42:
            return self.reply(req, 0)
        if code == 36:  # CONSUMER_SEND_MSG_BACK: redeliver via %RETRY%group after ~1 s
            threading.Thread(target=self.send_back, args=(ext,), daemon=True).start()
            return self.reply(req, 0)
        return self.reply(req, R.REQUEST_CODE_NOT_SUPPORTED, remark="mock: code %s not supported" % code)

    def send_back(self, ext):
        time.sleep(1.0)
        off = ext_int(ext, "offset")
        with LOCK:
            for (topic, qid), recs in QUEUES.items():
                for rec in recs:
                    r = R.decode_records(rec)[0]
                    if r.phy_offset == off:
                        props = dict(r.properties)
                        props.setdefault("RETRY_TOPIC", r.topic)
                        put("%RETRY%" + ext.get("group", ""), 0, r.stored_body, props, r.sys_flag, r.born_ts,
                            r.reconsume_times + 1)
                        return

    def pull(self, req, ext):
        topic, qid, off = ext.get("topic"), ext_int(ext, "queueId"), ext_int(ext, "queueOffset")
        n = max(1, ext_int(ext, "maxMsgNums", 32))
        suspend = ext_int(ext, "sysFlag") & 2
        expr = ext.get("subscription", "*")
        if ext_int(ext, "sysFlag") & 1:
            with LOCK:
                OFFSETS[(ext.get("consumerGroup"), topic, qid)] = ext_int(ext, "commitOffset")
        deadline = time.monotonic() + (min(ext_int(ext, "suspendTimeoutMillis", 15000), 15000) / 1000.0
                                       if suspend else 0)
        with LOCK:
            while True:
                q = QUEUES.get((topic, qid), [])
                tags = PROPS.get((topic, qid), [])
                if off < len(q):
                    out, i = [], off
                    while i < len(q) and len(out) < n:
                        if matches(expr, tags[i]):
                            out.append(q[i])
                        i += 1
                    if out:
                        return self.reply(req, 0, {"nextBeginOffset": i, "minOffset": 0, "maxOffset": len(q),
                                                   "suggestWhichBrokerId": 0}, b"".join(out))
                    return self.reply(req, 20, {"nextBeginOffset": i, "minOffset": 0, "maxOffset": len(q),
                                                "suggestWhichBrokerId": 0})
                left = deadline - time.monotonic()
                if left <= 0:
                    return self.reply(req, 19, {"nextBeginOffset": len(q) if off > len(q) else off,
                                                "minOffset": 0, "maxOffset": len(q), "suggestWhichBrokerId": 0})
                LOCK.wait(min(left, 0.5))


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    global WIRE, ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="standalone")
    ap.add_argument("--store")
    ap.add_argument("--namesrv-port", type=int, default=9876)
    ap.add_argument("--broker-port", type=int, default=10911)
    ap.add_argument("--broker-ip", default="127.0.0.1")
    ap.add_argument("--flush")
    ap.add_argument("-c")
    ap.add_argument("--wire-log")
    ARGS = ap.parse_args()
    wire = ARGS.wire_log or __import__("os").environ.get("FERROCKET_MOCK_WIRE_LOG")
    if wire:
        WIRE = open(wire, "a")
    for port in (ARGS.namesrv_port, ARGS.broker_port):
        s = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("mock boot success: namesrv %d broker %s:%d" % (ARGS.namesrv_port, ARGS.broker_ip, ARGS.broker_port),
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    main()
