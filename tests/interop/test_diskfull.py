"""Disk full (issue 6, item 4), on a small filesystem made for the test.

A size-limited tmpfs (root only; skipped with the reason otherwise) holds the store and an 8 MiB
ballast file. Producing until the filesystem fills must give clients a clear error (Java answers
SERVICE_NOT_AVAILABLE (14) with a remark about the disk) without the broker dying (an mmap
write into a full tmpfs is a SIGBUS); reads keep working; after the ballast is deleted writes
resume; nothing stored is corrupted, also across a restart.
"""

import os
import shutil
import subprocess
import time

import pytest

import remoting as R
from conftest import unique

FS_MIB = 40
CONF = {
    "mappedFileSizeCommitLog": 4 << 20,
    "maxMessageSize": 128 * 1024,
    "mappedFileSizeConsumeQueue": 60000,
    "maxHashSlotNum": 1000,
    "maxIndexNum": 4000,
    "defaultTopicQueueNums": 2,
    # Java's defaults (the harness raises them for the other tests on a shared disk)
    "diskSpaceWarningLevelRatio": 90,
    "diskSpaceCleanForciblyRatio": 85,
    "diskMaxUsedSpaceRatio": 75,
}


@pytest.fixture
def small_fs(tmp_path):
    mnt = str(tmp_path / "smallfs")
    os.makedirs(mnt)
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to mount a size-limited tmpfs (running as uid %d)" % os.geteuid())
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % FS_MIB, "ferrocket-diskfull", mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s): %s" % (r.returncode, r.stdout.decode().strip()))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_all(broker, topic, queues):
    out = {}
    with R.Conn(broker.addr, timeout=20) as c:
        R.settled_max_offsets(c, topic, range(queues))
        for q in range(queues):
            mn = R.min_offset(c, topic, q)
            for r in R.read_queue(c, unique("DfG"), topic, q, start=mn):
                out[(q, r.queue_offset)] = r
    return out


def test_disk_full_then_space_freed(broker_factory, small_fs):
    ballast = os.path.join(small_fs, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"\x01" * (8 << 20))
    broker = broker_factory(store=os.path.join(small_fs, "store"), conf=CONF)
    topic = unique("DiskT")
    acked = {}
    errors = []
    with R.Conn(broker.addr, timeout=20) as c:
        for i in range(4000):
            q = i % 2
            body = (b"df-%05d:" % i) + bytes((i * 7 + k) % 251 + 1 for k in range(32 * 1024))
            try:
                rep = R.send(c, topic, body, queue_id=q, keys="dk-%d" % i, props={"seq": str(i)})
            except (OSError, R.RemotingError) as e:
                pytest.fail("connection broke while filling the disk at send #%d (%d acknowledged, errors so far %r): %s; "
                            "broker alive=%s\n%s" % (i, len(acked), errors, e, broker.alive(), broker.describe_failure()))
            if rep.code == R.SUCCESS:
                acked[(q, int(rep.ext["queueOffset"]))] = (i, body)
            else:
                errors.append((i, rep.code, rep.remark))
                if len(errors) >= 5:
                    break
    assert broker.alive(), "broker died when the disk filled:\n" + broker.describe_failure()
    assert errors, "wrote %d x 32 KiB into a %d MiB filesystem without an error" % (len(acked), FS_MIB)
    assert acked, "nothing was written before the disk filled"
    code, remark = errors[0][1], errors[0][2] or ""
    assert code == R.SERVICE_NOT_AVAILABLE and "disk" in remark.lower(), \
        "a full disk should answer SERVICE_NOT_AVAILABLE (14) with a remark about the disk, got %d %r" % (code, remark)

    def check_intact(where):
        got = read_all(broker, topic, 2)
        for k, r in got.items():
            if k in acked:
                i, body = acked[k]
                assert r.body == body and r.properties.get("seq") == str(i), "%s: %r corrupted" % (where, k)
            else:
                pytest.fail("%s: record at %r that was never acknowledged: %r" % (where, k, r))
        # acknowledged records are all there, except any the broker deleted from the front
        for q in range(2):
            mine = sorted(o for (qq, o) in acked if qq == q)
            served = sorted(o for (qq, o) in got if qq == q)
            if served:
                missing = [o for o in mine if o >= served[0] and o not in set(served)]
                assert not missing, "%s: queue %d lost acknowledged offsets %r" % (where, q, missing[:10])
            front = [o for o in mine if not served or o < served[0]]
            if front:
                print("%s: queue %d: %d oldest messages deleted by the cleaner" % (where, q, len(front)))
        return got

    check_intact("disk full")  # reads keep working while full

    os.remove(ballast)
    deadline = time.monotonic() + 60
    resumed = None
    with R.Conn(broker.addr, timeout=20) as c:
        while time.monotonic() < deadline:
            body = b"after-free-" + bytes(range(1, 200))
            rep = R.send(c, topic, body, queue_id=0, props={"seq": "after"})
            if rep.code == R.SUCCESS:
                resumed = (int(rep.ext["queueOffset"]), body)
                acked[(0, resumed[0])] = ("after", body)
                break
            time.sleep(1.0)
    assert resumed, "writes did not resume within 60 s after freeing 8 MiB:\n" + broker.describe_failure()
    # fix the seq check for the marker record
    acked[(0, resumed[0])] = ("after", resumed[1])
    got = read_all(broker, topic, 2)
    assert got[(0, resumed[0])].body == resumed[1]

    assert broker.stop() == 0
    broker.start()
    got2 = read_all(broker, topic, 2)
    for k, r in got.items():
        assert k in got2 and got2[k].stored_body == r.stored_body, "record %r changed across the restart" % (k,)
    shutil.rmtree(os.path.join(small_fs, "store"), ignore_errors=True)
