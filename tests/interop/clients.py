"""Helpers around the official C++ client (PyPI rocketmq==0.4.4, librocketmq 1.2.3).

Two binding quirks are worked around here:
* `PushConsumer.subscribe` maps a raising callback to RECONSUME_LATER and then re-raises inside
  the ctypes callback, so ctypes returns an undefined value to C++. `subscribe_status` registers
  a callback that returns the status explicitly.
* Bodies pass through C strings (no NUL bytes either way); `RecvMessage.body` is the bytes up to
  the first NUL. Tests only use NUL-free bodies.
"""

import ctypes
import random
import threading
import time

from rocketmq.client import Message, Producer, PullConsumer, PushConsumer, SendStatus
from rocketmq.ffi import MSG_CALLBACK_FUNC, MessageModel, _CLogLevel, _CMessageQueue, _CPullStatus, dll
from rocketmq.exceptions import ffi_check
from rocketmq.client import RecvMessage

CONSUME_SUCCESS = 0
RECONSUME_LATER = 1


def make_producer(namesrv, group, timeout_ms=5000, max_message_size=None, start=True):
    p = Producer(group, timeout=timeout_ms, max_message_size=max_message_size)
    p.set_namesrv_addr(namesrv)
    dll.SetProducerLogLevel(p._handle, _CLogLevel.INFO)
    if start:
        p.start()
    return p


def make_message(topic, body, tags=None, keys=None, props=None):
    m = Message(topic)
    if tags is not None:
        m.set_tags(tags)
    if keys is not None:
        m.set_keys(keys)
    for k, v in (props or {}).items():
        m.set_property(k, v)
    m.set_body(body)
    return m


def make_push_consumer(namesrv, group, orderly=False, broadcasting=False, instance=None,
                       threads=None, batch_max=None):
    c = PushConsumer(group, orderly=orderly,
                     message_model=MessageModel.BROADCASTING if broadcasting else MessageModel.CLUSTERING)
    c.set_namesrv_addr(namesrv)
    if instance:
        # Two consumers of one group in one process need distinct client ids.
        c.set_instance_name(instance)
    if threads:
        c.set_thread_count(threads)
    if batch_max:
        c.set_message_batch_max_size(batch_max)
    dll.SetPushConsumerLogLevel(c._handle, _CLogLevel.INFO)
    return c


def subscribe_status(consumer, topic, fn, expression="*"):
    """Subscribe with `fn(RecvMessage) -> CONSUME_SUCCESS | RECONSUME_LATER` (no exceptions)."""

    def _on_message(_c, msg):
        try:
            return int(fn(RecvMessage(msg)))
        except Exception as e:  # a test bug must not become an undefined ctypes return
            print("consumer callback raised: %r" % e)
            return RECONSUME_LATER

    ffi_check(dll.Subscribe(consumer._handle, topic.encode(), expression.encode()))
    func = MSG_CALLBACK_FUNC(_on_message)
    consumer._callback_refs.append(func)
    if consumer._orderly:
        ffi_check(dll.RegisterMessageCallbackOrderly(consumer._handle, func))
    else:
        ffi_check(dll.RegisterMessageCallback(consumer._handle, func))


class Got:
    """What a consumer callback saw for one message."""

    __slots__ = ("topic", "tags", "keys", "body", "msg_id", "queue_id", "queue_offset", "props",
                 "reconsume_times", "thread", "t")

    def __init__(self, m, prop_names=()):
        self.topic = m.topic
        self.tags = (m.tags or b"").decode("utf-8")
        self.keys = (m.keys or b"").decode("utf-8")
        self.body = m.body or b""
        self.msg_id = m.id
        self.queue_id = m.queue_id
        self.queue_offset = m.queue_offset
        self.reconsume_times = m.reconsume_times
        self.props = {}
        for n in prop_names:
            v = m.get_property(n)
            self.props[n] = v.decode("utf-8") if v is not None else None
        self.thread = threading.get_ident()
        self.t = time.monotonic()

    def __repr__(self):
        return "Got(q=%d, qo=%d, tags=%r, keys=%r, body=%r, props=%r)" % (
            self.queue_id, self.queue_offset, self.tags, self.keys, self.body[:40], self.props)


class Collector:
    """Thread-safe list of Got, with an optional per-message decision."""

    def __init__(self, prop_names=("seq",), decide=None):
        self.lock = threading.Lock()
        self.items = []
        self.prop_names = prop_names
        self.decide = decide

    def __call__(self, m):
        g = Got(m, self.prop_names)
        status = CONSUME_SUCCESS
        if self.decide is not None:
            status = self.decide(g)
        with self.lock:
            self.items.append((g, status))
        return status

    def snapshot(self, only_success=False):
        with self.lock:
            return [g for g, s in self.items if not only_success or s == CONSUME_SUCCESS]

    def count(self):
        with self.lock:
            return len(self.items)

    def wait_for(self, pred, timeout, what="messages"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.snapshot()):
                return self.snapshot()
            time.sleep(0.1)
        snap = self.snapshot()
        raise AssertionError("timed out after %.0fs waiting for %s; got %d: %r"
                             % (timeout, what, len(snap), snap[:10]))


def body_for(i, size=None, rng=None, alphabet=None):
    """A NUL-free body that starts with its sequence number."""
    rng = rng or random.Random(i)
    head = ("m%06d:" % i).encode()
    if size is None:
        size = 8 + rng.randrange(200)
    if size <= len(head):
        return head[:size]
    alphabet = alphabet or b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    return head + bytes(rng.choice(alphabet) for _ in range(size - len(head)))


def send_sync_retrying(producer, msg, attempts=4):
    """send_sync, retried only when librocketmq failed before any byte reached the broker: right
    after start its heartbeat thread can hold the transport lock while the first send wants it
    ("GetTransport ... get timed_mutex timeout" in the client log, reported to the caller as "No
    route info of this topic"). Nothing was sent then, so a retry cannot duplicate."""
    for i in range(attempts):
        try:
            return producer.send_sync(msg)
        except Exception as e:  # the binding raises ProducerSendSyncFailed
            if "No route info" not in str(e) or i == attempts - 1:
                raise
            time.sleep(0.5)


def send_ok(res):
    return res.status == SendStatus.OK


def shutdown_quietly(*clients):
    for c in clients:
        try:
            c.shutdown()
        except Exception as e:
            print("shutdown failed: %r" % e)


class BoundedPuller:
    """The official pull consumer (FetchSubscriptionMessageQueues + Pull), driven like the
    binding's `PullConsumer.pull` generator but with a bound on every loop: the generator spins
    forever when a queue keeps answering without advancing nextBeginOffset."""

    def __init__(self, namesrv, group):
        self.pc = PullConsumer(group)
        self.pc.set_namesrv_addr(namesrv)
        self.pc.start()
        self.offsets = {}
        self.statuses = []

    def shutdown(self):
        self.pc.shutdown()

    def pull_once(self, topic, expression="*", max_num=32, max_rounds=10000):
        """One pass over every queue until NO_NEW_MSG; returns the messages found."""
        out = []
        mqs = ctypes.POINTER(_CMessageQueue)()
        size = ctypes.c_int()
        ffi_check(dll.FetchSubscriptionMessageQueues(self.pc._handle, topic.encode(),
                                                     ctypes.pointer(mqs), ctypes.pointer(size)))
        try:
            for i in range(size.value):
                mq = mqs[i]
                key = (mq.topic, mq.queueId)
                off = self.offsets.get(key, 0)
                for _ in range(max_rounds):
                    res = dll.Pull(self.pc._handle, ctypes.pointer(mq), expression.encode(),
                                   ctypes.c_longlong(off), max_num)
                    try:
                        st = res.pullStatus
                        self.statuses.append((mq.queueId, off, st, res.nextBeginOffset))
                        if st == _CPullStatus.FOUND:
                            for j in range(res.size):
                                out.append(Got(RecvMessage(res.msgFoundList[j]), ("seq",)))
                        progressed = st != _CPullStatus.BROKER_TIMEOUT and res.nextBeginOffset > off
                        if st != _CPullStatus.BROKER_TIMEOUT:
                            off = res.nextBeginOffset
                    finally:
                        dll.ReleasePullResult(res)
                    if st == _CPullStatus.NO_NEW_MSG or not progressed:
                        break
                self.offsets[key] = off
        finally:
            ffi_check(dll.ReleaseSubscriptionMessageQueue(mqs))
        return out


def pull_all(namesrv, group, topic, expression="*", max_num=32, deadline_s=60.0, expect=None):
    """Pull with the official pull consumer until `expect` messages arrived (or, without
    `expect`, until a pass finds nothing new)."""
    puller = BoundedPuller(namesrv, group)
    out = []
    try:
        t_end = time.monotonic() + deadline_s
        while time.monotonic() < t_end:
            before = len(out)
            out += puller.pull_once(topic, expression, max_num)
            if expect is None and len(out) == before:
                break
            if expect is not None and len(out) >= expect:
                break
            time.sleep(0.2)
    finally:
        puller.shutdown()
    return out
