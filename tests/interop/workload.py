"""Seeded load for the black-box crash tests: producer threads over raw connections that record
exactly which sends the broker acknowledged, and a checker that reads every queue back.

Each producer thread owns one queue and sends seq 0, 1, 2, ... in order, one at a time, so the
stored queue must hold the acknowledged seqs in order, plus at most the one send that was in
flight when the broker died (stored but never acknowledged is allowed; anything else is not).
"""

import random
import threading
import time
import zlib

import remoting as R


def body_of(seed, thr, seq):
    rng = random.Random(zlib.crc32(b"%d/%d/%d" % (seed, thr, seq)))
    size = rng.choice([1, 7, 100, 600, 1500, 3000, 9000])
    head = b"s%d-t%d-q%d:" % (seed, thr, seq)
    return head + bytes(rng.randrange(1, 256) for _ in range(max(0, size - len(head))))


class Producer(threading.Thread):
    def __init__(self, addr, topic, thr, seed, start_seq=0, stop=None):
        super().__init__(daemon=True)
        self.addr, self.topic, self.thr, self.seed = addr, topic, thr, seed
        self.seq = start_seq
        self.acked = []       # seqs acknowledged with SUCCESS
        self.in_flight = None  # the seq sent without an answer when the connection broke
        self.refused = []     # (seq, code, remark) answered with an error
        self.stop = stop or threading.Event()
        self.error = None

    def run(self):
        try:
            conn = R.Conn(self.addr, timeout=10)
        except OSError as e:
            self.error = e
            return
        try:
            while not self.stop.is_set():
                seq = self.seq
                body = body_of(self.seed, self.thr, seq)
                self.in_flight = seq
                try:
                    rep = R.send(conn, self.topic, body, queue_id=self.thr, tags="T%d" % self.thr,
                                 keys="k%d-%d" % (self.thr, seq),
                                 props={"seq": str(seq), "thr": str(self.thr), "seed": str(self.seed)})
                except (OSError, R.RemotingError):
                    return  # broker gone: `in_flight` may or may not be stored
                self.in_flight = None
                if rep.code == R.SUCCESS:
                    self.acked.append(seq)
                    if int(rep.ext.get("queueId", self.thr)) != self.thr:
                        self.error = AssertionError("sent to queue %d, stored in %r" % (self.thr, rep.ext))
                        return
                else:
                    self.refused.append((seq, rep.code, rep.remark))
                    time.sleep(0.01)
                self.seq += 1
        finally:
            conn.close()


class CommittingConsumer(threading.Thread):
    """Pulls every queue and commits the next offset (UPDATE_CONSUMER_OFFSET) after each batch."""

    def __init__(self, addr, group, topic, queues, stop=None):
        super().__init__(daemon=True)
        self.addr, self.group, self.topic, self.queues = addr, group, topic, queues
        self.stop = stop or threading.Event()
        self.committed = {}
        self.error = None

    def run(self):
        try:
            conn = R.Conn(self.addr, timeout=10)
        except OSError:
            return
        offs = {q: 0 for q in self.queues}
        try:
            while not self.stop.is_set():
                for q in self.queues:
                    rep = R.pull(conn, self.group, self.topic, q, offs[q], 32)
                    if rep.code == R.SUCCESS:
                        R.decode_records(rep.body)
                        offs[q] = int(rep.ext["nextBeginOffset"])
                        conn.call(R.UPDATE_CONSUMER_OFFSET, {"consumerGroup": self.group, "topic": self.topic,
                                                             "queueId": str(q), "commitOffset": str(offs[q])})
                        self.committed[q] = offs[q]
                time.sleep(0.05)
        except (OSError, R.RemotingError):
            return
        except R.RecordError as e:
            self.error = e
        finally:
            conn.close()


def check_queue(records, topic, thr, seed, acked, maybe, min_off):
    """Records of one queue against what its producer thread was told.

    acked: seqs acknowledged (in order); maybe: seqs possibly stored without acknowledgement.
    Returns the list of stored seqs."""
    problems = []
    seqs = []
    for i, r in enumerate(records):
        if r.queue_offset != min_off + i:
            problems.append("queue %d: record %d has queue offset %d (want %d)" % (thr, i, r.queue_offset, min_off + i))
        if r.topic != topic or r.queue_id != thr:
            problems.append("queue %d: record for %s/%d" % (thr, r.topic, r.queue_id))
        try:
            seq = int(r.properties.get("seq"))
        except (TypeError, ValueError):
            problems.append("queue %d offset %d: no seq property: %r" % (thr, r.queue_offset, r.properties))
            continue
        if r.properties.get("thr") != str(thr) or r.properties.get("seed") != str(seed):
            problems.append("queue %d offset %d: foreign record %r" % (thr, r.queue_offset, r.properties))
        if r.body != body_of(seed, thr, seq):
            problems.append("queue %d offset %d seq %d: body differs (%d bytes)" % (thr, r.queue_offset, seq, len(r.body)))
        if r.properties.get("KEYS") != "k%d-%d" % (thr, seq) or r.properties.get("TAGS") != "T%d" % thr:
            problems.append("queue %d offset %d seq %d: keys/tags %r" % (thr, r.queue_offset, seq, r.properties))
        seqs.append(seq)
    if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        problems.append("queue %d: seqs out of order or duplicated: %r" % (thr, seqs[:50]))
    stored = set(seqs)
    lost = [s for s in acked if s not in stored]
    if lost:
        problems.append("queue %d: %d acknowledged messages lost, first %r" % (thr, len(lost), lost[:10]))
    unexpected = sorted(stored - set(acked) - set(maybe))
    if unexpected:
        problems.append("queue %d: stored but neither acknowledged nor in flight: %r" % (thr, unexpected[:10]))
    return seqs, problems
