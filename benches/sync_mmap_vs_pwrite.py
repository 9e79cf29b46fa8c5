#!/usr/bin/env python3
"""Why SYNC_FLUSH appends use pwrite: 1 KiB appends, each followed by a sync, on a zero-filled file.

  python3 benches/sync_mmap_vs_pwrite.py [DIR]

Modes, interleaved so a drift of the disk hits all alike:
  write  pwrite + fdatasync
  mmap   store into a shared mapping + msync of the touched range
  mmapfd store into a shared mapping + fdatasync
Prints p50/p99 in microseconds per mode. On the ext4 VM of docs/design.md: write ~100-140 us,
both mmap modes ~290-340 us (every sync write-protects the pages it cleans; the next store faults).
"""
import mmap
import os
import sys
import time

N, SZ, REC = 1500, 64 << 20, 1024
d = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
path = os.path.join(d, "sync-mmap-vs-pwrite.dat")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
zero = b"\0" * (1 << 20)
for _ in range(SZ >> 20):
    os.write(fd, zero)
os.fsync(fd)
m = mmap.mmap(fd, SZ)
buf = b"x" * REC
lat = {"write": [], "mmap": [], "mmapfd": []}
off = 0
for i in range(N * 3):
    mode = ("write", "mmap", "mmapfd")[i % 3]
    t = time.perf_counter()
    if mode == "write":
        os.pwrite(fd, buf, off)
        os.fdatasync(fd)
    else:
        m[off:off + REC] = buf
        if mode == "mmap":
            a = off // 4096 * 4096
            m.flush(a, off + REC - a)
        else:
            os.fdatasync(fd)
    off += REC
    lat[mode].append(time.perf_counter() - t)
for mode, v in lat.items():
    v.sort()
    print(f"{mode:7s} p50 {v[len(v) // 2] * 1e6:6.0f} us  p99 {v[int(len(v) * 0.99)] * 1e6:6.0f} us")
m.close()
os.close(fd)
os.remove(path)
