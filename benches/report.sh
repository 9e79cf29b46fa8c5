#!/usr/bin/env bash
# Runs Ferrocket's standard benchmark matrix on this machine and writes docs/benchmarks.md (+ SVG plots
# under docs/bench/): a standalone broker on a fresh store, produce runs over 128 B / 1 KiB / 16 KiB bodies,
# single vs batches of 32, ASYNC_FLUSH vs SYNC_FLUSH, ack latency with one request in flight, a
# tail-following consumer during produce, a catch-up consumer over a backlog, and this machine's limits
# measured in the same run (loopback TCP bulk and round trip, memcpy into a pre-faulted mmap,
# write+fdatasync at the group size used, sendfile of a cached file). Every figure is shown next to the
# limit it is divided by.
#
# Usage: bash benches/report.sh
#   DUR=10          seconds per produce run        BACKLOG_MB=960   catch-up backlog (fits one 1 GiB segment)
#   CONNS=2 INFLIGHT=32   throughput runs' connections and requests in flight per connection
#   TAIL_RATE=5000  open-loop rate (msgs/s) of the producer feeding the tail-following consumer
#   LIMIT_S=2       seconds per machine-limit test  OUT=docs/benchmarks.md
#   WORK=dir        scratch dir on the real disk (default: a fresh dir under /var/tmp)
#   BIN=path        use this ferrocket binary instead of building target/release/ferrocket
#   NOTE="..."      free text for the "what else was running" line
#   ASYNC_STORE_DIR=dir  parent dir of the ASYNC_FLUSH stores (default WORK; e.g. /dev/shm when the shared disk
#                   is nearly full: the store refuses writes above 90 % use); SYNC_FLUSH stores stay in WORK
#   PROFILE="lat-async produce-async-128-b1 ..."  runs whose broker is sampled with `perf record` (top
#                   symbols written to the scratch dir as NAME.perf.txt) to find what bounds a missed target
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DUR=${DUR:-10}
BACKLOG_MB=${BACKLOG_MB:-960}
CONNS=${CONNS:-2}
INFLIGHT=${INFLIGHT:-32}
TAIL_RATE=${TAIL_RATE:-5000}
LIMIT_S=${LIMIT_S:-2}
OUT=${OUT:-docs/benchmarks.md}
PLOTS=docs/bench
WORK=${WORK:-$(mktemp -d /var/tmp/ferrocket-bench.XXXXXX)}
RES=$WORK/results
mkdir -p "$RES" "$PLOTS"
STARTED=$(date -u '+%H:%M UTC')
# Space the stores will need: the SYNC_FLUSH runs write ~5-10 GB into one store under WORK (plus one
# pre-allocated 1 GiB segment). On a disk without it the broker refuses sends (SERVICE_NOT_AVAILABLE)
# and the runs count them as errors: say so up front, and in the report.
avail_gb() { df -B1 --output=avail "$1" | awk 'NR==2{printf "%.1f", $1/1e9}'; }
DISK_START="$(avail_gb "$WORK") GB available in $WORK, $(avail_gb "${ASYNC_STORE_DIR:-$WORK}") GB in ${ASYNC_STORE_DIR:-$WORK}"
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 12 else 1)' "$(avail_gb "$WORK")"; then
  echo "warning: only $(avail_gb "$WORK") GB available in $WORK; the SYNC_FLUSH runs need ~10 GB" >&2
fi

if [ -z "${BIN:-}" ]; then
  cargo build --release -p ferrocket-server
  BIN=$ROOT/target/release/ferrocket
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

BROKER_PID=""
# The broker's disk thresholds: this shared disk reserves most of its blocks, so the store's use figure
# (from available blocks) sits near 90 %; the bench raises the thresholds so the broker keeps accepting
# writes and keeps its segments (BROKER_CONF=path overrides the file).
CONF=${BROKER_CONF:-$WORK/broker.conf}
if [ -z "${BROKER_CONF:-}" ]; then
  printf '%s\n' "diskMaxUsedSpaceRatio=97" "diskSpaceCleanForciblyRatio=98" "diskSpaceWarningLevelRatio=99" > "$CONF"
fi
STORE=""
start_broker() { # $1 = async|sync: a fresh store every time
  local parent=$WORK
  [ "$1" = async ] && parent=${ASYNC_STORE_DIR:-$WORK}
  STORE=$parent/ferrocket-bench-store.$$
  rm -rf "$STORE"
  NS_PORT=$(free_port); BROKER_PORT=$(free_port)
  "$BIN" standalone -c "$CONF" --store "$STORE" --namesrv-port "$NS_PORT" --broker-port "$BROKER_PORT" \
    --flush "$1" >> "$WORK/broker-$1.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 300); do
    if grep -q "boot success" "$WORK/broker-$1.log"; then return 0; fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then cat "$WORK/broker-$1.log"; echo "broker died" >&2; exit 1; fi
    sleep 0.1
  done
  echo "broker did not boot in 30 s" >&2; cat "$WORK/broker-$1.log"; exit 1
}
# Waits (at most 90 s) until the broker uses under 5 % of a core, so one-time work (the preallocator
# zero-filling the next 1 GiB segment, dispatch of a backlog) is not charged to the next run.
wait_quiet() {
  local hz; hz=$(getconf CLK_TCK)
  for _ in $(seq 90); do
    local a b
    a=$(awk '{print $14+$15}' "/proc/$BROKER_PID/stat")
    sleep 1
    b=$(awk '{print $14+$15}' "/proc/$BROKER_PID/stat")
    if [ $(( (b - a) * 100 )) -lt $(( hz * 5 )) ]; then return 0; fi
  done
  echo "   broker still busy after 90 s; measuring anyway" >&2
}
stop_broker() {
  if [ -n "$BROKER_PID" ]; then kill -TERM "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
  BROKER_PID=""
  [ -n "$STORE" ] && rm -rf "$STORE"
  STORE=""
}
trap 'stop_broker' EXIT

# run NAME bench-subcommand args...: keeps the last line (the JSON summary) in $RES/NAME.json
run() {
  local name=$1; shift
  echo "== $name: ferrocket bench $*" >&2
  local perf_pid=""
  if [[ " ${PROFILE:-} " == *" $name "* ]] && [ -n "$BROKER_PID" ] && command -v perf > /dev/null; then
    perf record -F 499 -g -p "$BROKER_PID" -o "$WORK/$name.perf" > /dev/null 2>&1 &
    perf_pid=$!
  fi
  "$BIN" bench "$@" --plot "$PLOTS/$name.svg" > "$WORK/$name.out" 2> "$WORK/$name.err" || {
    echo "   failed: $(tail -3 "$WORK/$name.err")" >&2; echo '{"failed":true}' > "$RES/$name.json"; }
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true
    perf report -i "$WORK/$name.perf" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep '%' | head -40 > "$WORK/$name.perf.txt" || true
    echo "   perf profile of the broker: $WORK/$name.perf.txt" >&2
  fi
  [ -s "$RES/$name.json" ] && grep -q failed "$RES/$name.json" && return 0
  tail -1 "$WORK/$name.out" > "$RES/$name.json"
  cat "$RES/$name.json" >&2
}

# Bytes of one stored record for a body of $1 bytes (fixed fields 91 + topic + UNIQ_KEY/WAIT properties).
record_bytes() { echo $(( $1 + 91 + 10 + 52 )); }

SYNC_GROUP=$(( CONNS * INFLIGHT * $(record_bytes 1024) ))

# Bytes per group commit of a SYNC_FLUSH run ($1: its JSON) of $2-byte records, from the broker's
# own sync count; empty when the broker did not report it.
measured_group() {
  python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
n = r.get("requests_per_sync") if r.get("broker_syncs") else None
print(max(1, round(n * int(sys.argv[2]) * r.get("batch", 1))) if n else "")' "$1" "$2" 2>/dev/null || true
}

# The disk's fdatasync latency drifts by up to 80x within minutes, so the raw write+fdatasync limit of a
# SYNC_FLUSH run is measured right before and right after it, at that run's group size.
sync_limit() { # NAME before|after GROUP_BYTES
  echo "== write+fdatasync limit $2 $1 ($3 B groups)" >&2
  "$BIN" bench limits --dir "$WORK" --seconds "$LIMIT_S" --only sync --group-bytes "$3" \
    > "$RES/limits-sync-$1-$2.json" || true
  cat "$RES/limits-sync-$1-$2.json" >&2
}

# Copying as many bytes as run NAME stored into pages never touched before (a new sparse file in the
# ASYNC_FLUSH stores' file system): what putting that much new data in memory costs this machine, the cost
# the pre-faulted memcpy limit leaves out. On a VM whose host takes free guest memory back, it grows with
# the volume.
fresh_limit() { # NAME RECORD_BYTES
  local mb
  mb=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(max(16, r["msgs"] * int(sys.argv[2]) >> 20))' \
    "$RES/$1.json" "$2" 2>/dev/null) || return 0
  echo "== fresh-page limit after $1 ($mb MiB)" >&2
  "$BIN" bench limits --dir "${ASYNC_STORE_DIR:-$WORK}" --only fresh --fresh-mb "$mb" --fresh-record "$2" \
    > "$RES/limits-fresh-$1.json" || true
  cat "$RES/limits-fresh-$1.json" >&2
}

echo "== machine limits (part 1)" >&2
"$BIN" bench limits --dir "$WORK" --seconds "$LIMIT_S" --only tcp,rtt,mmap,sendfile \
  --record-sizes 128,1024,16384 > "$RES/limits.json"
cat "$RES/limits.json" >&2

echo "== load generator ceiling: the same 128 B runs against a broker that stores nothing" >&2
NB_PORT=$(free_port)
"$BIN" bench null-broker --port "$NB_PORT" > "$WORK/null-broker.log" 2>&1 &
NB_PID=$!
sleep 1
run null-128-b1 produce --namesrv "127.0.0.1:$NB_PORT" --topic BenchTopic --size 128 --connections "$CONNS" \
  --inflight "$INFLIGHT" --duration "$DUR" --threads 1
run null-lat produce --namesrv "127.0.0.1:$NB_PORT" --topic BenchTopic --size 128 --connections 1 --inflight 1 \
  --duration "$DUR"
kill "$NB_PID" 2>/dev/null || true; wait "$NB_PID" 2>/dev/null || true

# A fresh broker (fresh store) for every body size, so no run pays for an earlier run's data.
fresh_broker() { # $1 = async|sync
  stop_broker
  start_broker "$1"
  NS="127.0.0.1:$NS_PORT"
  # Warm-up: creates the topic and faults in the first segment.
  "$BIN" bench produce --namesrv "$NS" --topic BenchTopic --size 128 --count 2000 > /dev/null 2>&1 || true
  wait_quiet
}

for FLUSH in async sync; do
  fresh_broker "$FLUSH"
  [ "$FLUSH" = sync ] && sync_limit lat-sync before "$(record_bytes 128)"
  run "lat-$FLUSH" produce --namesrv "$NS" --topic BenchTopic --size 128 --connections 1 --inflight 1 --duration "$DUR"
  [ "$FLUSH" = sync ] && sync_limit lat-sync after "$(record_bytes 128)"
  for SIZE in 128 1024 16384; do
    [ "$SIZE" = 128 ] || fresh_broker "$FLUSH"
    for BATCH in 1 32; do
      NAME="produce-$FLUSH-$SIZE-b$BATCH"
      # 16 KiB async: each batch size on a fresh store, and after each run the fresh-page limit.
      [ "$FLUSH-$SIZE-$BATCH" = async-16384-32 ] && fresh_broker async
      [ "$NAME" = produce-sync-1024-b1 ] && sync_limit "$NAME" before "$SYNC_GROUP"
      run "$NAME" produce --namesrv "$NS" --topic BenchTopic --size "$SIZE" \
        --batch "$BATCH" --connections "$CONNS" --inflight "$INFLIGHT" --duration "$DUR" --threads 1
      if [ "$NAME" = produce-async-128-b1 ]; then
        # The same load with twice the connections: at CONNS x INFLIGHT the closed loop is bound by its
        # own round trip (the cores are ~20 % idle), so this shows what the pair does when saturated.
        run "$NAME-sat" produce --namesrv "$NS" --topic BenchTopic --size "$SIZE" \
          --batch "$BATCH" --connections $(( CONNS * 2 )) --inflight "$INFLIGHT" --duration "$DUR" --threads 1
      fi
      if [ "$NAME" = produce-sync-1024-b1 ]; then
        # The broker reports its group commits (commitLogSyncCount): measure the raw limit at the
        # group size it really used, twice, right after the run.
        GROUP=$(measured_group "$RES/$NAME.json" "$(record_bytes 1024)")
        sync_limit "$NAME" after "${GROUP:-$SYNC_GROUP}"
        sync_limit "$NAME" after2 "${GROUP:-$SYNC_GROUP}"
      fi
      if [ "$FLUSH-$SIZE" = async-16384 ]; then
        stop_broker   # frees the run's store first: the limit starts from the same free memory
        fresh_limit "$NAME" "$(record_bytes 16384)"
      fi
    done
  done
  if [ "$FLUSH" = async ]; then
    # Tail-following consumer while an open-loop producer sends 1 KiB at TAIL_RATE msgs/s.
    fresh_broker async
    "$BIN" bench produce --namesrv "$NS" --topic TailTopic --size 1024 --count 100 > /dev/null 2>&1 || true
    run tail-consume consume --namesrv "$NS" --topic TailTopic --group tail --duration "$((DUR + 2))" &
    CPID=$!
    sleep 1
    run tail-produce produce --namesrv "$NS" --topic TailTopic --size 1024 --rate "$TAIL_RATE" \
      --connections 1 --inflight 16 --duration "$DUR"
    wait "$CPID" || true
  fi
  stop_broker
done

# Catch-up consumer over a backlog of BACKLOG_MB of 16 KiB bodies, served from the page cache, on a fresh
# ASYNC_FLUSH broker so the backlog sits in the first CommitLog segment (retention on a nearly full disk
# deletes every segment but the active one).
fresh_broker async
COUNT=$(( BACKLOG_MB * 1024 * 1024 / 16384 ))
run backlog-produce produce --namesrv "$NS" --topic BacklogTopic --size 16384 --batch 32 \
  --connections "$CONNS" --inflight 4 --count "$COUNT"
wait_quiet   # dispatch of the backlog finished: the consumer sees all of it
# The raw sendfile limit right before and after the catch-up read, from a file on the store's own file
# system (loopback throughput drifts over minutes on this shared VM, like fdatasync).
sendfile_limit() { # before|after
  echo "== sendfile limit $1 catchup-consume" >&2
  "$BIN" bench limits --dir "${ASYNC_STORE_DIR:-$WORK}" --seconds "$LIMIT_S" --only sendfile \
    > "$RES/limits-sendfile-catchup-consume-$1.json" || true
  cat "$RES/limits-sendfile-catchup-consume-$1.json" >&2
}
sendfile_limit before
run catchup-consume consume --namesrv "$NS" --topic BacklogTopic --group catchup --from-start \
  --until-caught-up --pull-batch 32
sendfile_limit after
stop_broker

# What else was running (the machine is shared): load and the busiest processes right now.
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC') (end of the runs; started $STARTED)"
  echo "nproc=$(nproc)"
  echo "mem_gib=$(free -g | awk '/Mem/{print $2}')"
  echo "kernel=$(uname -r)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "fs=$(df -T "$WORK" | awk 'NR==2{print $2" on "$1}') (SYNC_FLUSH stores); ASYNC_FLUSH stores in ${ASYNC_STORE_DIR:-$WORK} ($(df -T "${ASYNC_STORE_DIR:-$WORK}" | awk 'NR==2{print $2}'))"
  echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "busy=$(ps -eo pcpu,comm --sort=-pcpu | sed -n '2,6p' | awk '{printf "%s %s%%; ", $2, $1}')"
  echo "note=${NOTE:-}"
  echo "disk=at the start $DISK_START; at the end $(avail_gb "$WORK") GB in $WORK"
  echo "refusals=$(cat "$WORK"/broker-*.log 2>/dev/null | grep -c -e 'store refused a put' -e 'pre-allocating the next segment failed' || true)"
} > "$RES/machine.txt"

python3 "$ROOT/benches/report_md.py" "$RES" "$OUT" "$PLOTS" \
  "DUR=$DUR BACKLOG_MB=$BACKLOG_MB CONNS=$CONNS INFLIGHT=$INFLIGHT TAIL_RATE=$TAIL_RATE LIMIT_S=$LIMIT_S ASYNC_STORE_DIR=${ASYNC_STORE_DIR:-}" \
  "$SYNC_GROUP"
echo "wrote $OUT (raw results in $RES)" >&2
