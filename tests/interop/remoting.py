"""A small, independent RocketMQ remoting client used by the black-box tests.

It speaks the JSON header format (`[int32 total][int32 headerLen][JSON header][body]`), sends
requests the way the Java/C++ clients do, and decodes stored-message records (v1, IPv4 hosts)
from PULL_MESSAGE bodies, checking each record's body CRC the way the Java broker computes it
(CRC32 of the stored, possibly compressed, body). The tests use it to look at the broker from
outside the official clients: queue offsets, committed offsets, raw records, hostile frames.
"""

import json
import socket
import struct
import time
import zlib

# Request codes (RocketMQ RequestCode).
SEND_MESSAGE = 10
PULL_MESSAGE = 11
QUERY_CONSUMER_OFFSET = 14
UPDATE_CONSUMER_OFFSET = 15
UPDATE_AND_CREATE_TOPIC = 17
GET_MAX_OFFSET = 30
GET_MIN_OFFSET = 31
SEARCH_OFFSET_BY_TIMESTAMP = 29
HEART_BEAT = 34
UNREGISTER_CLIENT = 35
GET_CONSUMER_LIST_BY_GROUP = 38
LOCK_BATCH_MQ = 41
GET_ROUTEINFO_BY_TOPIC = 105
GET_BROKER_CLUSTER_INFO = 106
UPDATE_BROKER_CONFIG = 25
GET_BROKER_CONFIG = 26
UPDATE_NAMESRV_CONFIG = 318
GET_NAMESRV_CONFIG = 319
SEND_MESSAGE_V2 = 310

# Response codes.
SUCCESS = 0
SYSTEM_ERROR = 1
SYSTEM_BUSY = 2
REQUEST_CODE_NOT_SUPPORTED = 3
FLUSH_DISK_TIMEOUT = 10
SERVICE_NOT_AVAILABLE = 14
MESSAGE_ILLEGAL = 13
TOPIC_NOT_EXIST = 17
PULL_NOT_FOUND = 19
PULL_RETRY_IMMEDIATELY = 20
PULL_OFFSET_MOVED = 21
QUERY_NOT_FOUND = 22

# sysFlag bits.
FLAG_COMPRESSED = 0x1
FLAG_BORNHOST_V6 = 0x10
FLAG_STOREHOST_V6 = 0x20

PROP_SEP = "\x02"
NAME_VALUE_SEP = "\x01"


class RemotingError(Exception):
    pass


class Reply:
    def __init__(self, header, body):
        self.header = header
        self.body = body

    @property
    def code(self):
        return self.header.get("code")

    @property
    def remark(self):
        return self.header.get("remark")

    @property
    def ext(self):
        return self.header.get("extFields") or {}

    def __repr__(self):
        return "Reply(code=%r, remark=%r, ext=%r, body=%d bytes)" % (
            self.code, self.remark, self.ext, len(self.body or b""))


def encode_frame(header, body=b""):
    """One request frame with a JSON header (serialize type byte 0)."""
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return struct.pack(">ii", 4 + len(h) + len(body), len(h)) + h + body


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RemotingError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def read_frame(sock, max_len=64 << 20):
    (total,) = struct.unpack(">i", recv_exact(sock, 4))
    if total < 4 or total > max_len:
        raise RemotingError("bad frame length %d" % total)
    data = recv_exact(sock, total)
    (hl,) = struct.unpack(">i", data[:4])
    ser = (hl >> 24) & 0xFF
    hlen = hl & 0xFFFFFF
    if ser != 0:
        raise RemotingError("reply with serialize type %d (the C++ client only reads JSON)" % ser)
    if hlen > total - 4:
        raise RemotingError("header length %d past frame %d" % (hlen, total))
    header = json.loads(data[4:4 + hlen].decode("utf-8"))
    return Reply(header, data[4 + hlen:])


class Conn:
    """One TCP connection; `call` sends a request and waits for the reply with its opaque."""

    _opaque = 1

    def __init__(self, addr, timeout=10.0):
        host, port = addr.rsplit(":", 1) if isinstance(addr, str) else addr
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, code, ext=None, body=b"", timeout=None, oneway=False):
        Conn._opaque += 1
        opaque = Conn._opaque
        header = {
            "code": code,
            "language": "JAVA",
            "version": 401,
            "opaque": opaque,
            "flag": 2 if oneway else 0,
            "remark": None,
            "extFields": {k: v for k, v in (ext or {}).items()},
            "serializeTypeCurrentRPC": "JSON",
        }
        self.sock.sendall(encode_frame(header, body))
        if oneway:
            return None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RemotingError("timeout waiting for reply to code %d" % code)
            self.sock.settimeout(left)
            rep = read_frame(self.sock)
            # Skip server->client requests (flag bit0 clear) and stale replies.
            if (rep.header.get("flag", 0) & 1) and rep.header.get("opaque") == opaque:
                return rep


# ---- properties ----------------------------------------------------------------------------

def encode_properties(props):
    return "".join("%s%s%s%s" % (k, NAME_VALUE_SEP, v, PROP_SEP) for k, v in props.items())


def decode_properties(s):
    out = {}
    for item in s.split(PROP_SEP):
        if not item:
            continue
        k, sep, v = item.partition(NAME_VALUE_SEP)
        if sep:
            out[k] = v
    return out


# ---- requests the tests use ----------------------------------------------------------------

def route(namesrv, topic, timeout=5.0):
    with Conn(namesrv, timeout) as c:
        rep = c.call(GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
    if rep.code != SUCCESS:
        return None
    return json.loads(rep.body.decode("utf-8")) if rep.body else None


def send(conn, topic, body, queue_id=0, tags=None, keys=None, props=None, group="RawProducer",
         sys_flag=0):
    p = {"UNIQ_KEY": "%032X" % (time.time_ns() ^ id(body)), "WAIT": "true"}
    if tags:
        p["TAGS"] = tags
    if keys:
        p["KEYS"] = keys
    if props:
        p.update(props)
    ext = {
        "producerGroup": group,
        "topic": topic,
        "defaultTopic": "TBW102",
        "defaultTopicQueueNums": "4",
        "queueId": str(queue_id),
        "sysFlag": str(sys_flag),
        "bornTimestamp": str(int(time.time() * 1000)),
        "flag": "0",
        "properties": encode_properties(p),
        "reconsumeTimes": "0",
        "unitMode": "false",
        "batch": "false",
    }
    return conn.call(SEND_MESSAGE, ext, body)


def max_offset(conn, topic, queue_id):
    rep = conn.call(GET_MAX_OFFSET, {"topic": topic, "queueId": str(queue_id)})
    if rep.code != SUCCESS:
        raise RemotingError("GET_MAX_OFFSET %s/%d: %r" % (topic, queue_id, rep))
    return int(rep.ext["offset"])


def min_offset(conn, topic, queue_id):
    rep = conn.call(GET_MIN_OFFSET, {"topic": topic, "queueId": str(queue_id)})
    if rep.code != SUCCESS:
        raise RemotingError("GET_MIN_OFFSET %s/%d: %r" % (topic, queue_id, rep))
    return int(rep.ext["offset"])


def query_consumer_offset(conn, group, topic, queue_id):
    """Committed offset, or None when the broker has none (QUERY_NOT_FOUND)."""
    rep = conn.call(QUERY_CONSUMER_OFFSET,
                    {"consumerGroup": group, "topic": topic, "queueId": str(queue_id)})
    if rep.code == SUCCESS:
        return int(rep.ext["offset"])
    return None


def consumer_ids(conn, group):
    rep = conn.call(GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": group})
    if rep.code != SUCCESS or not rep.body:
        return []
    return json.loads(rep.body.decode("utf-8")).get("consumerIdList") or []


def pull(conn, group, topic, queue_id, offset, max_nums=32, expr="*", timeout=10.0):
    ext = {
        "consumerGroup": group,
        "topic": topic,
        "queueId": str(queue_id),
        "queueOffset": str(offset),
        "maxMsgNums": str(max_nums),
        "sysFlag": str(4),  # SUBSCRIPTION, no suspend, no commit
        "commitOffset": "0",
        "suspendTimeoutMillis": "0",
        "subscription": expr,
        "subVersion": "0",
        "expressionType": "TAG",
    }
    return conn.call(PULL_MESSAGE, ext, timeout=timeout)


# ---- stored message records ----------------------------------------------------------------

class Record:
    __slots__ = ("size", "magic", "body_crc", "queue_id", "flag", "queue_offset", "phy_offset",
                 "sys_flag", "born_ts", "born_host", "store_ts", "store_host", "reconsume_times",
                 "prepared_tx_offset", "stored_body", "body", "topic", "properties", "body_pos")

    def __repr__(self):
        return "Record(q=%d, qo=%d, phy=%d, topic=%r, body=%d bytes, props=%r)" % (
            self.queue_id, self.queue_offset, self.phy_offset, self.topic, len(self.body),
            self.properties)


class RecordError(Exception):
    pass


def decode_records(data):
    """Decode consecutive v1/v2 records; raise RecordError on any inconsistency (garbage)."""
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 4:
            raise RecordError("trailing %d bytes at %d" % (n - pos, pos))
        r = Record()
        (r.size,) = struct.unpack_from(">i", data, pos)
        if r.size < 4 or pos + r.size > n:
            raise RecordError("record at %d: size %d past %d" % (pos, r.size, n))
        rec = data[pos:pos + r.size]
        p = 4
        try:
            r.magic, r.body_crc, r.queue_id, r.flag, r.queue_offset, r.phy_offset, r.sys_flag, \
                r.born_ts = struct.unpack_from(">iiiiqqiq", rec, p)
            p += 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8
            bh = 16 if r.sys_flag & FLAG_BORNHOST_V6 else 4
            r.born_host = (socket.inet_ntop(socket.AF_INET6 if bh == 16 else socket.AF_INET,
                                            rec[p:p + bh]), struct.unpack_from(">i", rec, p + bh)[0])
            p += bh + 4
            (r.store_ts,) = struct.unpack_from(">q", rec, p)
            p += 8
            sh = 16 if r.sys_flag & FLAG_STOREHOST_V6 else 4
            r.store_host = (socket.inet_ntop(socket.AF_INET6 if sh == 16 else socket.AF_INET,
                                             rec[p:p + sh]), struct.unpack_from(">i", rec, p + sh)[0])
            p += sh + 4
            r.reconsume_times, r.prepared_tx_offset = struct.unpack_from(">iq", rec, p)
            p += 12
            (blen,) = struct.unpack_from(">i", rec, p)
            p += 4
            if blen < 0 or p + blen > len(rec):
                raise RecordError("body length %d" % blen)
            r.body_pos = p
            r.stored_body = rec[p:p + blen]
            p += blen
            tlen = rec[p]
            p += 1
            r.topic = rec[p:p + tlen].decode("utf-8")
            p += tlen
            (plen,) = struct.unpack_from(">h", rec, p)
            p += 2
            if plen < 0 or p + plen > len(rec):
                raise RecordError("properties length %d" % plen)
            r.properties = decode_properties(rec[p:p + plen].decode("utf-8"))
            p += plen
        except (struct.error, IndexError, UnicodeDecodeError, ValueError) as e:
            raise RecordError("record at %d (size %d) undecodable: %s" % (pos, r.size, e))
        if p != r.size:
            raise RecordError("record at %d: fields end at %d, size says %d" % (pos, p, r.size))
        if r.magic not in (-626843481, -626843477):  # 0xDAA320A7 (v1), 0xDAA320AB (v2)
            raise RecordError("record at %d: bad magic %#x" % (pos, r.magic & 0xFFFFFFFF))
        crc = zlib.crc32(r.stored_body) & 0x7FFFFFFF  # UtilAll.crc32: IEEE CRC-32, sign bit masked
        if r.body_crc != crc:
            raise RecordError("record at %d: body CRC %#x != %#x" % (pos, r.body_crc & 0xFFFFFFFF, crc))
        r.body = zlib.decompress(r.stored_body) if r.sys_flag & FLAG_COMPRESSED else r.stored_body
        out.append(r)
        pos += r.size
    return out


def settled_max_offsets(conn, topic, queues, at_least=0, timeout=15.0, quiet_s=0.3):
    """Max offsets of `queues` once they sum to >= at_least and stop moving for quiet_s: a send is
    acknowledged before the ConsumeQueue dispatch makes it visible (RocketMQ's reput lag)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        cur = {q: max_offset(conn, topic, q) for q in queues}
        now = time.monotonic()
        if cur != last:
            last, since = cur, now
        elif sum(cur.values()) >= at_least and now - since >= quiet_s:
            return cur
        if now > deadline:
            return cur
        time.sleep(0.05)


def read_queue(conn, group, topic, queue_id, start=None, expr="*", batch=32, deadline_s=60.0, end=None):
    """Every record of one queue from `start` (min offset by default) to the max offset (or to
    `end`, waiting up to 10 s for the dispatch to make it visible)."""
    if start is None:
        start = min_offset(conn, topic, queue_id)
    if end is None:
        end = max_offset(conn, topic, queue_id)
    else:
        t_vis = time.monotonic() + 10
        while max_offset(conn, topic, queue_id) < end and time.monotonic() < t_vis:
            time.sleep(0.02)
    out = []
    off = start
    t_end = time.monotonic() + deadline_s
    while off < end:
        if time.monotonic() > t_end:
            raise RemotingError("read_queue %s/%d stuck at %d of %d" % (topic, queue_id, off, end))
        rep = pull(conn, group, topic, queue_id, off, batch, expr)
        if rep.code == SUCCESS:
            recs = decode_records(rep.body)
            out.extend(recs)
            nxt = int(rep.ext.get("nextBeginOffset", off))
            if nxt <= off:
                raise RemotingError("pull at %d did not advance: %r" % (off, rep))
            off = nxt
        elif rep.code in (PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY, PULL_OFFSET_MOVED):
            nxt = int(rep.ext.get("nextBeginOffset", off))
            if nxt <= off:
                raise RemotingError("pull at %d answered %d without progress (max %d): %r"
                                    % (off, rep.code, end, rep))
            off = nxt
        else:
            raise RemotingError("pull %s/%d at %d: %r" % (topic, queue_id, off, rep))
    return out


def wait_until(pred, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))
