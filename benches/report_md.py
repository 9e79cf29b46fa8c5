#!/usr/bin/env python3
"""Turns the JSON lines collected by benches/report.sh into docs/benchmarks.md.

usage: report_md.py RESULTS_DIR OUT.md PLOTS_DIR "PARAMS" SYNC_GROUP_BYTES
Every figure is printed next to the limit it is divided by (measured in the same run) and the ratio.
"""
import datetime
import json
import os
import sys


MARKER = "<!-- analysis: hand-written, kept by report_md.py -->"


def load(res, name):
    try:
        with open(os.path.join(res, name + ".json")) as f:
            v = json.loads(f.read().strip() or "{}")
            return None if v.get("failed") else v
    except (OSError, ValueError):
        return None


def num(x, nd=1):
    if x is None:
        return "n/a"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}"


def verdict(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def main():
    res, out, plots, params, sync_group = sys.argv[1:6]
    sync_group = int(sync_group)
    machine = {}
    try:
        for line in open(os.path.join(res, "machine.txt")):
            k, _, v = line.rstrip("\n").partition("=")
            machine[k] = v
    except OSError:
        pass
    lim = load(res, "limits") or {}

    def sync_lim(run, whens=("before", "after")):
        """Mean commits/s of the raw limit measured around `run` (`whens`), and each value."""
        vals = []
        for when in whens:
            v = load(res, f"limits-sync-{run}-{when}") or {}
            for s in v.get("fdatasync", []):
                vals.append(s)
        if not vals:
            return None
        mean = sum(s["commits_per_s"] for s in vals) / len(vals)
        return {"group_bytes": vals[0]["group_bytes"], "commits_per_s": mean,
                "each": [s["commits_per_s"] for s in vals], "p50_us": [s["p50_us"] for s in vals]}
    tcp_gbps = lim.get("tcp_bulk_gb_per_s")
    rtt = lim.get("tcp_rtt") or {}
    memcpy = {m["record_bytes"]: m for m in lim.get("mmap_memcpy", [])}
    sendfile = lim.get("sendfile") or {}
    # The sendfile limit measured right before and after the catch-up read (same file system as the
    # store), when present: the mean of the two, with each shown.
    around = [v["sendfile"] for v in (load(res, f"limits-sendfile-catchup-consume-{w}") for w in ("before", "after"))
              if v and v.get("sendfile")]
    sendfile_note = ""
    if around:
        sendfile = {"gb_per_s": sum(a["gb_per_s"] for a in around) / len(around),
                    "cpu_s_per_gb": sum(a["cpu_s_per_gb"] for a in around) / len(around),
                    "chunk_bytes": around[0].get("chunk_bytes")}
        sendfile_note = ", before/after the read " + " / ".join(f"{a['gb_per_s'] * 1000:,.0f}" for a in around) + " MB/s"
    fsync_lat = sync_lim("lat-sync")
    fsync_1k = sync_lim("produce-sync-1024-b1")
    # With the broker's own sync count, the limit measured after the run at its real group size.
    fsync_1k_real = sync_lim("produce-sync-1024-b1", ("after", "after2"))

    L = []
    w = L.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w("# Benchmarks\n")
    w("Produced by `bash benches/report.sh` (the raw JSON lines of every run stay in its scratch dir). "
      "Every figure is divided by a limit of this machine **measured in the same run**, because absolute "
      "numbers from a shared 2-core VM mean little and its fdatasync latency drifts by up to 80x over minutes.\n")
    w(f"- Date: {machine.get('date', now)}")
    w(f"- Machine: {machine.get('nproc', '?')} CPUs ({machine.get('cpu', '?')}), {machine.get('mem_gib', '?')} GiB RAM, "
      f"kernel {machine.get('kernel', '?')}, store on {machine.get('fs', '?')}")
    w(f"- Load generator and broker share the machine (same 2 cores). Load average at the end: "
      f"{machine.get('loadavg', '?')}; busiest processes: {machine.get('busy', '?')}")
    if machine.get("note"):
        w(f"- Also running: {machine['note']}")
    if machine.get("disk"):
        refusals = machine.get("refusals", "0")
        extra = (f"; **the broker logged {refusals} refusal lines** (disk full: the runs' errors are "
                 "refused sends, see the broker logs in the scratch dir)") if refusals not in ("", "0") else ""
        w(f"- Disk: {machine['disk']}{extra}")
    w(f"- Parameters: `{params}` (short runs: the machine is shared with other builds)")
    w("- Units: MB = 1e6 bytes of message body; latency percentiles from an HDR histogram (3 significant digits); "
      "broker CPU from /proc/<pid>/stat of the local broker process (utime+stime) over the run.\n")

    # ---- targets
    w("## Targets (issue 5)\n")
    w("| target | figure | limit (same run) | ratio | goal | verdict |")
    w("|---|---|---|---|---|---|")
    a16 = [load(res, f"produce-async-16384-b{b}") for b in (1, 32)]
    a16 = [r for r in a16 if r]
    best16 = max(a16, key=lambda r: r["mb_per_s"]) if a16 else None
    lim16 = None
    parts = []
    if tcp_gbps:
        parts.append(tcp_gbps * 1000)
    if memcpy.get(16384):
        parts.append(memcpy[16384]["gb_per_s"] * 1000)
    if parts:
        lim16 = min(parts)
    if best16 and lim16:
        r = best16["mb_per_s"] / lim16
        w(f"| async ingest, 16 KiB bodies (best of batch 1/32: batch {best16.get('batch')}) | {num(best16['mb_per_s'])} MB/s | "
          f"min(loopback bulk {num(tcp_gbps * 1000 if tcp_gbps else None)}, mmap memcpy {num(memcpy.get(16384, {}).get('gb_per_s', 0) * 1000)}) = {num(lim16)} MB/s | "
          f"{r:.2f} | >= 0.5 | {verdict(r >= 0.5)} |")
    else:
        w("| async ingest, 16 KiB bodies | n/a | n/a | n/a | >= 0.5 | n/a |")
    for b in (1, 32):
        r16 = load(res, f"produce-async-16384-b{b}")
        fr = (load(res, f"limits-fresh-produce-async-16384-b{b}") or {}).get("fresh_append")
        if r16 and fr and fr.get("gb_per_s"):
            rf = r16["mb_per_s"] / (fr["gb_per_s"] * 1000)
            w(f"| same, batch {b}, against copying that volume ({fr['bytes'] / 2**30:.1f} GiB) into never-touched pages "
              f"(new memory; first GiB {fr['first_gib_s']} s, last {fr['last_gib_s']} s) | {num(r16['mb_per_s'])} MB/s | "
              f"{num(fr['gb_per_s'] * 1000)} MB/s | {rf:.2f} | context | - |")
    a128 = load(res, "produce-async-128-b1")
    if a128:
        w(f"| 128 B unbatched, async ({a128.get('connections')} conns x {a128.get('inflight')} in flight) | {num(a128['msgs_per_s'])} msgs/s | absolute | - | >= 200,000 msgs/s | {verdict(a128['msgs_per_s'] >= 200000)} |")
        nb = load(res, "null-128-b1")
        if nb:
            w(f"| same run against the null broker (stores nothing, acks at once): load generator + remoting ceiling | {num(nb['msgs_per_s'])} msgs/s | - | broker run / ceiling = {a128['msgs_per_s'] / max(nb['msgs_per_s'], 1):.2f} | context | - |")
        cpu = a128.get("broker_cpu_us_per_msg")
        w(f"| broker CPU per message, same run | {num(cpu, 2)} µs | absolute | - | <= 5 µs | {verdict(None if cpu is None else cpu <= 5)} |")
    sat = load(res, "produce-async-128-b1-sat")
    if sat:
        w(f"| 128 B unbatched, async, saturating ({sat.get('connections')} conns x {sat.get('inflight')} in flight) | {num(sat['msgs_per_s'])} msgs/s | absolute | - | >= 200,000 msgs/s | {verdict(sat['msgs_per_s'] >= 200000)} |")
        cpu = sat.get("broker_cpu_us_per_msg")
        w(f"| broker CPU per message, saturating run | {num(cpu, 2)} µs | absolute | - | <= 5 µs | {verdict(None if cpu is None else cpu <= 5)} |")
    lat = load(res, "lat-async")
    if lat and rtt:
        goal = 2 * rtt["p50_us"] + 10
        w(f"| ack latency p50, 1 in flight, 128 B async | {num(lat['p50_us'])} µs | loopback RTT p50 {num(rtt['p50_us'])} µs | "
          f"{lat['p50_us'] / rtt['p50_us']:.2f}x RTT | <= 2x RTT + 10 µs = {num(goal)} µs | {verdict(lat['p50_us'] <= goal)} |")
        nl = load(res, "null-lat")
        if nl:
            w(f"| same, against the null broker (tool + remoting only) | p50 {num(nl['p50_us'])} / p99 {num(nl['p99_us'])} / p99.9 {num(nl['p999_us'])} µs | - | - | context | - |")
        w(f"| ack latency p99 | {num(lat['p99_us'])} µs | loopback RTT p99 {num(rtt['p99_us'])} µs | {lat['p99_us'] / max(rtt['p99_us'], 0.1):.2f}x | <= 100 µs | {verdict(lat['p99_us'] <= 100)} |")
        w(f"| ack latency p99.9 | {num(lat['p999_us'])} µs | loopback RTT p99.9 {num(rtt['p999_us'])} µs | {lat['p999_us'] / max(rtt['p999_us'], 0.1):.2f}x | <= 1000 µs | {verdict(lat['p999_us'] <= 1000)} |")
    s1k = load(res, "produce-sync-1024-b1")
    fs = fsync_1k
    def failed_row(label, r):
        w(f"| {label} | not measured: {r['errors']:,} of its requests failed (see the analysis) | - | - | - | **not measured** |")

    if s1k and s1k["msgs"] == 0:
        failed_row("SYNC_FLUSH commits/s, 1 KiB, requests in flight", s1k)
    elif s1k and s1k.get("broker_syncs") and fsync_1k_real:
        fr = fsync_1k_real
        r = s1k["broker_syncs_per_s"] / fr["commits_per_s"]
        w(f"| SYNC_FLUSH commits/s, 1 KiB, {s1k.get('connections', 1) * s1k.get('inflight', 1)} requests in flight (the broker's group commits, {num(s1k['requests_per_sync'], 1)} requests each) | {num(s1k['broker_syncs_per_s'])} /s | "
          f"write+fdatasync of {fr['group_bytes']} B (that group size), right after the run, twice: {' / '.join(num(x) for x in fr['each'])} = {num(fr['commits_per_s'])} /s | {r:.2f} | >= 0.8 | {verdict(r >= 0.8)} |")
    elif s1k and fs:
        window = s1k.get("connections", 1) * s1k.get("inflight", 1)
        rounds = s1k["requests_per_s"] / window
        r = rounds / fs["commits_per_s"]
        w(f"| SYNC_FLUSH commits/s, 1 KiB, {window} requests in flight (acked requests/s ÷ {window}) | {num(rounds)} /s | "
          f"write+fdatasync of {fs['group_bytes']} B (= {window} records), mean of before/after {' / '.join(num(x) for x in fs['each'])} = {num(fs['commits_per_s'])} /s | {r:.2f} | >= 0.8 | {verdict(r >= 0.8)} |")
    ls = load(res, "lat-sync")
    if ls and ls["msgs"] == 0:
        failed_row("SYNC_FLUSH, 128 B, 1 in flight", ls)
    elif ls and fsync_lat:
        r = ls["requests_per_s"] / fsync_lat["commits_per_s"]
        w(f"| SYNC_FLUSH, 128 B, 1 in flight (each ack = one commit) | {num(ls['requests_per_s'])} commits/s, p50 {num(ls['p50_us'])} µs | "
          f"write+fdatasync of {fsync_lat['group_bytes']} B, before/after {' / '.join(num(x) for x in fsync_lat['each'])} /s (p50 {' / '.join(num(x) for x in fsync_lat['p50_us'])} µs) | {r:.2f} | >= 0.8 | {verdict(r >= 0.8)} |")
    cu = load(res, "catchup-consume")
    if cu and sendfile:
        r = cu["mb_per_s"] / (sendfile["gb_per_s"] * 1000)
        w(f"| pull serving from page cache (catch-up over the backlog, 16 KiB) | {num(cu['mb_per_s'])} MB/s | sendfile {num(sendfile['gb_per_s'] * 1000)} MB/s ({sendfile.get('chunk_bytes')} B calls{sendfile_note}) | {r:.2f} | >= 0.7 | {verdict(r >= 0.7)} |")
        c = cu.get("broker_cpu_s_per_gb")
        if c is not None and sendfile.get("cpu_s_per_gb"):
            rc = c / sendfile["cpu_s_per_gb"]
            w(f"| broker CPU per GB served, same run | {num(c, 3)} s/GB | sendfile sender {num(sendfile['cpu_s_per_gb'], 3)} s/GB | {rc:.2f}x | <= 2x | {verdict(rc <= 2)} |")
    w("")

    # ---- limits
    w("## This machine's limits (same run)\n")
    w("| limit | value |")
    w("|---|---|")
    if tcp_gbps is not None:
        w(f"| loopback bulk TCP, one stream, 1 MiB writes | {num(tcp_gbps * 1000)} MB/s |")
    if rtt:
        w(f"| loopback round trip, {rtt['msg_bytes']} B, TCP_NODELAY | p50 {rtt['p50_us']} µs, p99 {rtt['p99_us']} µs, p99.9 {rtt['p999_us']} µs |")
    for rb, m in sorted(memcpy.items()):
        w(f"| memcpy of {rb} B records into a pre-faulted 256 MiB file mapping | {num(m['gb_per_s'] * 1000)} MB/s ({num(m['records_per_s'])} records/s) |")
    for b in (1, 32):
        fr = (load(res, f"limits-fresh-produce-async-16384-b{b}") or {}).get("fresh_append")
        if fr:
            w(f"| copy of {fr['bytes'] / 2**30:.1f} GiB ({fr['record_bytes']} B records) into never-touched pages of a new file, "
              f"ASYNC store's file system, after the 16 KiB x {b} run | {num(fr['gb_per_s'] * 1000)} MB/s, CPU {fr['cpu_s_per_gb']} s/GB; "
              f"first GiB {fr['first_gib_s']} s, last GiB {fr['last_gib_s']} s |")
    for run in ("lat-sync", "produce-sync-1024-b1"):
        for when in ("before", "after", "after2"):
            v = load(res, f"limits-sync-{run}-{when}") or {}
            for s in v.get("fdatasync", []):
                w(f"| write+fdatasync, {s['group_bytes']} B groups, zero-filled file, {when.replace('after2', 'after (again)')} {run} | {num(s['commits_per_s'])} commits/s (p50 {s['p50_us']} µs, p99 {s['p99_us']} µs) |")
    if sendfile:
        w(f"| sendfile of a cached file over loopback, {sendfile.get('chunk_bytes')} B calls | {num(sendfile['gb_per_s'] * 1000)} MB/s, sender CPU {sendfile['cpu_s_per_gb']} s/GB |")
    w("")

    # ---- all runs
    w("## Produce matrix\n")
    w("Closed loop (each slot sends when its previous ack arrives); latency is per request (a batch of 32 is one sample).\n")
    w("| flush | body | batch | conns x in flight | msgs/s | MB/s | ratio to limit | p50 µs | p99 µs | p99.9 µs | max µs | errors | broker µs CPU/msg | broker CPU s/GB | load generator µs CPU/msg | load avg |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for flush in ("async", "sync"):
        names = [f"lat-{flush}"] + [f"produce-{flush}-{s}-b{b}" for s in (128, 1024, 16384) for b in (1, 32)]
        for n in names:
            r = load(res, n)
            if not r:
                w(f"| {flush} | {n} | failed or not run | | | | | | | | | | | | | |")
                continue
            size = r.get("size")
            ratio = "-"
            if flush == "async" and size in memcpy and tcp_gbps:
                l = min(tcp_gbps * 1000, memcpy[size]["gb_per_s"] * 1000)
                ratio = f"{r['mb_per_s'] / l:.3f} of {num(l)} MB/s"
            elif flush == "sync":
                # Only where the limit was measured at this run's group size: one 128 B record
                # (within a 4 KiB page) for 1 in flight, SYNC_GROUP for the 1 KiB 2x32 run.
                window = r.get("connections", 1) * r.get("inflight", 1)
                f = fsync_lat if n == "lat-sync" else (fsync_1k if n == "produce-sync-1024-b1" else None)
                if n == "produce-sync-1024-b1" and r.get("broker_syncs") and fsync_1k_real:
                    ratio = f"{r['broker_syncs_per_s'] / fsync_1k_real['commits_per_s']:.2f} of write+fdatasync({fsync_1k_real['group_bytes']} B) rounds"
                elif f:
                    ratio = f"{r['requests_per_s'] / window / f['commits_per_s']:.2f} of write+fdatasync({f['group_bytes']} B) rounds"
            w(f"| {flush} | {size} B | {r.get('batch')} | {r.get('connections')} x {r.get('inflight')} | {num(r['msgs_per_s'])} | {num(r['mb_per_s'])} | {ratio} | "
              f"{num(r['p50_us'])} | {num(r['p99_us'])} | {num(r['p999_us'])} | {num(r['max_us'])} | {r['errors']} | {num(r.get('broker_cpu_us_per_msg'), 2)} | {num(r.get('broker_cpu_s_per_gb'), 3)} | {num(r.get('client_cpu_us_per_msg'), 2)} | {num(r.get('loadavg_1m'), 1)} |")
    w("")
    w("## Consumers\n")
    w("| run | msgs | msgs/s | MB/s | e2e p50 µs | e2e p99 µs | e2e p99.9 µs | max µs | errors | broker CPU s/GB |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for n, label in (("tail-produce", "open-loop producer feeding the tail consumer (ack latency)"),
                     ("tail-consume", "tail-following consumer during produce (end-to-end latency)"),
                     ("backlog-produce", "backlog producer (16 KiB x 32)"),
                     ("catchup-consume", "catch-up consumer over the backlog")):
        r = load(res, n)
        if not r:
            w(f"| {label} | failed or not run | | | | | | | | |")
            continue
        msgs = f"{r['msgs']:,}" + (f" of {r['backlog_msgs']:,}" if r.get("backlog_msgs") is not None else "")
        w(f"| {label} | {msgs} | {num(r['msgs_per_s'])} | {num(r['mb_per_s'])} | {num(r['p50_us'])} | {num(r['p99_us'])} | {num(r['p999_us'])} | {num(r['max_us'])} | {r['errors']} | {num(r.get('broker_cpu_s_per_gb'), 3)} |")
    w("")
    w("## Plots\n")
    w("Left: latency by percentile (HDR style, log scales). Right: messages/s over time (100 ms buckets).\n")
    rel = os.path.relpath(os.path.abspath(plots), os.path.dirname(os.path.abspath(out)))
    for f in sorted(os.listdir(plots)):
        if f.endswith(".svg"):
            w(f"### {f[:-4]}\n\n![{f[:-4]}]({rel}/{f})\n")
    # Hand-written analysis (bottlenecks of missed targets) survives regeneration: everything from
    # the marker line on is kept from the previous file.
    kept = MARKER + "\n\n## Analysis of missed targets\n\n(none written yet)\n"
    try:
        old = open(out).read()
        if MARKER in old:
            kept = old[old.index(MARKER):]
    except OSError:
        pass
    w(kept.rstrip("\n"))
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
