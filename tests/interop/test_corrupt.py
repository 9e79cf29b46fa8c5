"""Torn and corrupt files (issue 6, item 2), from outside the broker.

Each case fills a fresh store through raw sends, reads every record back as the truth (queue,
queue offset, physical offset, exact bytes), stops the broker (SIGKILL, so recovery has to
scan, or SIGTERM for the clean-shutdown variants), damages one kind of file, and restarts it.
The broker must start, serve every record that lies wholly before the damage exactly as it was,
never serve a damaged or torn record (every record served is checked against the truth and its
body CRC), keep queue offsets contiguous, and take new sends at the next offsets.

Byte flips are placed where RocketMQ's record format can detect them (body bytes, covered by
BODYCRC, and the size/magic fields): a flip inside the properties or topic text is not
detectable by the format and is not tested.
"""

import glob
import json
import os
import random
import struct

import pytest

import remoting as R
from conftest import record_stat, unique

QUEUES = 4
SEG = 1 << 20
CONF = {"mappedFileSizeCommitLog": SEG, "maxMessageSize": 256 * 1024, "defaultTopicQueueNums": QUEUES}
N_MESSAGES = 360

REPAIRS_SEEN = []


def fill(broker, seed):
    """Produce N_MESSAGES raw sends over 4 queues (crossing CommitLog segments); return truth."""
    rng = random.Random(seed)
    topic, group = unique("Dmg"), unique("DmgG")
    with R.Conn(broker.addr, timeout=20) as conn:
        for i in range(N_MESSAGES):
            q = i % QUEUES
            size = rng.choice([10, 200, 1000, 3000, 7000])
            body = (b"dmg-%d:" % i) + bytes(rng.randrange(1, 256) for _ in range(size))
            rep = R.send(conn, topic, body, queue_id=q, tags="T%d" % (i % 3), keys="key-%d" % i,
                         props={"seq": str(i)})
            assert rep.code == R.SUCCESS, rep
        R.settled_max_offsets(conn, topic, range(QUEUES), at_least=N_MESSAGES)
        truth = {}
        for q in range(QUEUES):
            for r in R.read_queue(conn, unique("Truth"), topic, q):
                truth[(q, r.queue_offset)] = r
            # a committed offset, so consumerOffset.json has content
            conn.call(R.UPDATE_CONSUMER_OFFSET, {"consumerGroup": group, "topic": topic, "queueId": str(q),
                                                 "commitOffset": "3"})
    assert len(truth) == N_MESSAGES
    return topic, group, truth


def commitlog_files(store):
    cands = [d for d in (os.path.join(store, "commitlog"),) if os.path.isdir(d)]
    if not cands:
        cands = [r for r, ds, fs in os.walk(store) if os.path.basename(r) == "commitlog"]
    assert cands, "no commitlog directory under %s: %r" % (store, os.listdir(store))
    files = sorted(f for f in glob.glob(os.path.join(cands[0], "*")) if os.path.basename(f).isdigit())
    assert files, "no CommitLog segment in %s" % cands[0]
    return files


def last_written_segment(store, truth):
    end = max(r.phy_offset + r.size for r in truth.values())
    for f in reversed(commitlog_files(store)):
        base = int(os.path.basename(f))
        if base < end:
            return f, base, end
    raise AssertionError("no segment holds phy %d" % end)


def verify(broker, topic, truth, intact_below_phy=None, intact_below_qoff=None, all_intact=False):
    """Every served record equals the truth; every record wholly below the damage is served."""
    assert broker.alive()
    problems = []
    served = {}
    with R.Conn(broker.addr, timeout=20) as conn:
        maxes = R.settled_max_offsets(conn, topic, range(QUEUES), at_least=len(truth) if all_intact else 0)
        for q in range(QUEUES):
            mn = R.min_offset(conn, topic, q)
            mx = maxes[q]
            try:
                recs = R.read_queue(conn, unique("Check"), topic, q, start=mn)
            except R.RecordError as e:
                problems.append("queue %d: garbage served: %s" % (q, e))
                continue
            for i, r in enumerate(recs):
                if r.queue_offset != mn + i:
                    problems.append("queue %d: offset %d at index %d (min %d)" % (q, r.queue_offset, i, mn))
                t = truth.get((q, r.queue_offset))
                if t is None:
                    problems.append("queue %d offset %d: record that was never written: %r" % (q, r.queue_offset, r))
                elif (r.stored_body, r.properties, r.topic, r.phy_offset) != (t.stored_body, t.properties, t.topic, t.phy_offset):
                    problems.append("queue %d offset %d: served record differs from what was stored" % (q, r.queue_offset))
                served[(q, r.queue_offset)] = r
            if len(recs) != mx - mn:
                problems.append("queue %d: %d records between min %d and max %d" % (q, len(recs), mn, mx))
    for k, t in truth.items():
        must = all_intact
        if intact_below_phy is not None and t.phy_offset + t.size <= intact_below_phy:
            must = True
        if intact_below_qoff is not None and k[0] in intact_below_qoff and k[1] < intact_below_qoff[k[0]]:
            must = True
        if must and k not in served:
            problems.append("queue %d offset %d (phy %d) lost although it lies before the damage" % (k[0], k[1], t.phy_offset))
    assert not problems, "\n".join(problems[:30]) + "\n" + broker.describe_failure()
    # and it still takes writes, at the next offset
    with R.Conn(broker.addr) as conn:
        for q in range(QUEUES):
            mx = R.max_offset(conn, topic, q)
            rep = R.send(conn, topic, b"after-repair", queue_id=q, props={"seq": "after"})
            assert rep.code == R.SUCCESS, rep
            assert int(rep.ext["queueOffset"]) == mx, (q, mx, rep)
            rec = R.read_queue(conn, unique("After"), topic, q, start=mx, end=mx + 1)
            assert [r.body for r in rec] == [b"after-repair"]
    repaired = broker.log_grep(r"(?i)(repair|truncat|recover|corrupt|torn|invalid|bak)")
    REPAIRS_SEEN.append(len(repaired))
    record_stat("corrupt", cases=1, records_checked=len(served), repair_log_lines=len(repaired))
    return served


def stopped(broker, how):
    if how == "kill":
        broker.kill9()
    else:
        assert broker.stop() == 0, "broker did not exit cleanly on SIGTERM"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_truncated_last_commitlog_segment(broker_factory, seed):
    broker = broker_factory(conf=CONF)
    topic, _g, truth = fill(broker, seed)
    stopped(broker, "kill")
    f, base, end = last_written_segment(broker.store, truth)
    rng = random.Random(seed)
    # anywhere in the written part of the last segment, including inside a record header
    cut = rng.randrange(0, end - base + 1)
    with open(f, "r+b") as fh:
        fh.truncate(cut)
    broker.start()
    verify(broker, topic, truth, intact_below_phy=base + cut)


def test_truncated_commitlog_after_clean_shutdown(broker_factory):
    broker = broker_factory(conf=CONF)
    topic, _g, truth = fill(broker, 4)
    stopped(broker, "clean")
    f, base, end = last_written_segment(broker.store, truth)
    cut = (end - base) - 100  # inside the last record
    with open(f, "r+b") as fh:
        fh.truncate(cut)
    broker.start()
    verify(broker, topic, truth, intact_below_phy=base + cut)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flipped_bytes_in_commitlog_tail(broker_factory, seed):
    broker = broker_factory(conf=CONF)
    topic, _g, truth = fill(broker, 10 + seed)
    stopped(broker, "kill")
    rng = random.Random(seed)
    # damage one of the last 20 records: a body byte (BODYCRC) or its size/magic field
    tail = sorted(truth.values(), key=lambda r: r.phy_offset)[-20:]
    victim = rng.choice(tail)
    body_pos = victim.body_pos
    where = rng.choice(["body", "body", "size", "magic"])
    if where == "body":
        off = victim.phy_offset + body_pos + rng.randrange(len(victim.stored_body))
    elif where == "size":
        off = victim.phy_offset + rng.randrange(4)
    else:
        off = victim.phy_offset + 4 + rng.randrange(4)
    seg = None
    for fpath in commitlog_files(broker.store):
        b = int(os.path.basename(fpath))
        if b <= off < b + SEG:
            seg = (fpath, b)
    assert seg, "no segment for phy %d" % off
    with open(seg[0], "r+b") as fh:
        fh.seek(off - seg[1])
        old = fh.read(1)
        fh.seek(off - seg[1])
        fh.write(bytes([old[0] ^ (1 << rng.randrange(8))]))
    broker.start()
    served = verify(broker, topic, truth, intact_below_phy=victim.phy_offset)
    assert not any(r.phy_offset == victim.phy_offset for r in served.values()), \
        "the record with a flipped %s byte was served" % where


@pytest.mark.parametrize("how", ["kill", "clean"])
def test_deleted_checkpoint(broker_factory, how):
    broker = broker_factory(conf=CONF)
    topic, _g, truth = fill(broker, 20)
    stopped(broker, how)
    cp = os.path.join(broker.store, "checkpoint")
    assert os.path.exists(cp), "no checkpoint file at %s: %r" % (cp, os.listdir(broker.store))
    os.remove(cp)
    broker.start()
    verify(broker, topic, truth, all_intact=True)


def test_corrupt_checkpoint(broker_factory):
    broker = broker_factory(conf=CONF)
    topic, _g, truth = fill(broker, 21)
    stopped(broker, "kill")
    cp = os.path.join(broker.store, "checkpoint")
    assert os.path.exists(cp), "no checkpoint file at %s" % cp
    size = max(os.path.getsize(cp), 24)
    with open(cp, "wb") as fh:
        fh.write(random.Random(21).randbytes(size))
    broker.start()
    verify(broker, topic, truth, all_intact=True)


def test_truncated_consume_queue(broker_factory):
    broker = broker_factory(conf=CONF)
    topic, _g, truth = fill(broker, 30)
    stopped(broker, "clean")
    q = 2
    files = sorted(glob.glob(os.path.join(broker.store, "consumequeue", topic, str(q), "*")))
    assert files, "no ConsumeQueue files for %s/%d under %s" % (topic, q, broker.store)
    n_units = len([k for k in truth if k[0] == q])
    cut = random.Random(30).randrange(1, n_units * 20)  # may split a unit
    with open(files[0], "r+b") as fh:
        fh.truncate(cut)
    broker.start()
    verify(broker, topic, truth, intact_below_qoff={q: cut // 20, 0: 10 ** 9, 1: 10 ** 9, 3: 10 ** 9})


def test_corrupt_index_file(broker_factory):
    broker = broker_factory(conf=CONF)
    topic, _g, truth = fill(broker, 40)
    stopped(broker, "clean")
    files = sorted(glob.glob(os.path.join(broker.store, "index", "*")))
    assert files, "no IndexFile under %s/index" % broker.store
    rng = random.Random(40)
    with open(files[-1], "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.write(rng.randbytes(40))  # the header
        for _ in range(20):
            fh.seek(rng.randrange(40, size - 64))
            fh.write(rng.randbytes(64))
    broker.start()
    verify(broker, topic, truth, all_intact=True)
    # a key query over the damaged index must answer (anything) and not take the broker down
    with R.Conn(broker.addr) as conn:
        try:
            conn.call(12, {"topic": topic, "key": "key-7", "maxNum": "32", "beginTimestamp": "0",
                           "endTimestamp": str(2 ** 62)})
        except R.RemotingError:
            pass
    assert broker.alive()


@pytest.mark.parametrize("name", ["consumerOffset.json", "topics.json", "subscriptionGroup.json"])
def test_corrupt_config_json(broker_factory, name):
    broker = broker_factory(conf=CONF)
    topic, group, truth = fill(broker, 50)
    stopped(broker, "clean")
    path = os.path.join(broker.store, "config", name)
    if not os.path.exists(path):
        pytest.fail("%s does not exist after a clean shutdown (config dir: %r)" % (
            path, os.listdir(os.path.dirname(path)) if os.path.isdir(os.path.dirname(path)) else None))
    with open(path, "r+b") as fh:
        data = fh.read()
        fh.seek(0)
        fh.truncate()
        fh.write(data[:len(data) // 2] + b"\x00\xff{{{ not json")
    broker.start()
    verify(broker, topic, truth, all_intact=True)
    if name == "consumerOffset.json":
        with R.Conn(broker.addr) as conn:
            for q in range(QUEUES):
                off = R.query_consumer_offset(conn, group, topic, q)
                # restored from the .bak (3) or lost (None/0); never garbage
                assert off in (None, 0, 3), "committed offset after corruption: %r" % off
