"""kill -9 under load (issue 6, item 1), from outside the broker.

A SYNC_FLUSH (then ASYNC_FLUSH) broker takes sends from producer threads that record every
acknowledged message, and a consumer that commits offsets; the broker is SIGKILLed at a seeded
random moment and restarted on the same store, several times per seed. After each restart every
queue is read back raw: every acknowledged message is present exactly as sent, in per-queue order,
with contiguous queue offsets, every record decodes with a correct body CRC (no garbage), the
only unacknowledged records are sends that were in flight at the kill, committed offsets never
point past what exists, and the broker keeps serving new sends at the next offsets.

CI runs 2 seeds x 2 kill cycles per flush mode; FERROCKET_SOAK=1 runs 10 seeds x 4 cycles.
"""

import random
import threading
import time

import pytest

import remoting as R
from conftest import record_stat, soak_enabled, unique
from workload import CommittingConsumer, Producer, body_of, check_queue

QUEUES = 4
# Small CommitLog segments so a few seconds of load cross several files.
CONF = {"mappedFileSizeCommitLog": 1 << 20, "maxMessageSize": 256 * 1024, "defaultTopicQueueNums": QUEUES}

STATS = {"cycles": 0, "acked": 0, "checked": 0, "in_flight_stored": 0}


def seeds_and_cycles():
    return (list(range(1, 11)), 4) if soak_enabled() else ([11, 12], 2)


def run_cycle(broker, topic, group, seed, cycle, state):
    rng = random.Random(seed * 1000 + cycle)
    stop = threading.Event()
    producers = [Producer(broker.addr, topic, q, seed, start_seq=state["next"][q], stop=stop) for q in range(QUEUES)]
    consumer = CommittingConsumer(broker.addr, group, topic, list(range(QUEUES)), stop=stop)
    for t in producers + [consumer]:
        t.start()
    time.sleep(rng.uniform(0.3, 2.5))
    broker.kill9()
    stop.set()
    for t in producers + [consumer]:
        t.join(15)
        assert not t.is_alive(), "client thread stuck after the kill"
    for p in producers:
        assert p.error is None, p.error
        state["acked"][p.thr] += p.acked
        maybe = [] if p.in_flight is None else [p.in_flight]
        state["maybe"][p.thr] += maybe + [s for s, _c, _r in p.refused]
        state["next"][p.thr] = p.seq + 1
    assert consumer.error is None, "consumer saw a bad record before the kill: %s" % consumer.error
    STATS["acked"] += sum(len(p.acked) for p in producers)
    assert sum(len(p.acked) for p in producers) > 0, "no send was acknowledged before the kill"

    broker.start()
    verify(broker, topic, group, seed, state)
    STATS["cycles"] += 1


def verify(broker, topic, group, seed, state):
    problems = []
    with R.Conn(broker.addr, timeout=20) as conn:
        maxes = R.settled_max_offsets(conn, topic, range(QUEUES),
                                      at_least=sum(len(state["acked"][q]) for q in range(QUEUES)))
        for q in range(QUEUES):
            mn = R.min_offset(conn, topic, q)
            mx = maxes[q]
            recs = R.read_queue(conn, unique("Verify"), topic, q, start=mn, end=mx)
            assert len(recs) == mx - mn, "queue %d: read %d records between min %d and max %d" % (q, len(recs), mn, mx)
            seqs, probs = check_queue(recs, topic, q, seed, state["acked"][q], state["maybe"][q], mn)
            problems += probs
            STATS["checked"] += len(recs)
            STATS["in_flight_stored"] += len(set(seqs) - set(state["acked"][q]))
            # A stored in-flight send is now a fact: later cycles must keep it.
            state["acked"][q] = [s for s in seqs]
            state["maybe"][q] = []
            committed = R.query_consumer_offset(conn, group, topic, q)
            if committed is not None and committed > mx:
                problems.append("queue %d: committed consumer offset %d past max offset %d" % (q, committed, mx))
    assert not problems, "after restart:\n" + "\n".join(problems[:30]) + "\n" + broker.describe_failure()


@pytest.mark.timeout(1800 if soak_enabled() else 300)
@pytest.mark.parametrize("flush", ["sync", "async"])
def test_kill9_under_load(broker_factory, flush):
    seeds, cycles = seeds_and_cycles()
    for seed in seeds:
        broker = broker_factory(flush=flush, conf=CONF)
        topic, group = unique("Crash%s%d" % (flush, seed)), unique("CrashG")
        # create the topic with all queues before the load
        with R.Conn(broker.addr) as conn:
            for q in range(QUEUES):
                rep = R.send(conn, topic, body_of(seed, q, -1), queue_id=q, tags="T%d" % q, keys="k%d--1" % q,
                             props={"seq": "-1", "thr": str(q), "seed": str(seed)})
                assert rep.code == R.SUCCESS, rep
        state = {"acked": {q: [] for q in range(QUEUES)}, "maybe": {q: [] for q in range(QUEUES)},
                 "next": {q: 0 for q in range(QUEUES)}}
        # the warm-up records have seq -1
        for q in range(QUEUES):
            state["acked"][q].append(-1)
        for cycle in range(cycles):
            run_cycle(broker, topic, group, seed, cycle, state)
        # still a working broker: a new send lands at the next offset of its queue
        with R.Conn(broker.addr) as conn:
            mx = R.max_offset(conn, topic, 0)
            rep = R.send(conn, topic, b"after", queue_id=0, props={"seq": "-2", "thr": "0", "seed": str(seed)})
            assert rep.code == R.SUCCESS, rep
            assert int(rep.ext["queueOffset"]) == mx, rep
        broker.stop()
        record_stat("kill9_%s" % flush, seeds=1, cycles=cycles)
    record_stat("kill9_%s" % flush, acked=STATS["acked"], records_checked=STATS["checked"],
                in_flight_stored=STATS["in_flight_stored"])
    print("kill -9 (%s): %r" % (flush, STATS))
