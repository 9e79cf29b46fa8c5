//! `ferrocket bench consume`: pulls every queue of a topic with PULL_MESSAGE (long polling),
//! decodes the stored records and measures throughput and end-to-end latency from the send time
//! carried in each body.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrocket_net::header::consumer::{
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, OffsetResponseHeader,
    PullMessageRequestHeader, PullMessageResponseHeader,
};
use ferrocket_net::{RequestCode, ResponseCode};

use super::report::{Live, Progress, Recorder, Summary};
use super::rpc::{body_bytes, fetch_route, request, Connector, Rpc};
use super::sched::{Clock, MonoClock};
use super::wire::{
    body_sent_unix_ns, QueueTarget, RouteUse, PULL_FLAG_SUBSCRIPTION, PULL_FLAG_SUSPEND,
};

#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// Nameserver address (host:port).
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Topic to pull from.
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Consumer group name.
    #[arg(long, default_value = "ferrocket_bench_consumer")]
    pub group: String,
    /// Start at each queue's min offset (default: at its current max offset, i.e. tail-follow).
    #[arg(long)]
    pub from_start: bool,
    /// Stop once every queue reaches the max offset it had when the run started (a catch-up
    /// read of the backlog; pulls do not long-poll).
    #[arg(long)]
    pub until_caught_up: bool,
    /// Run time in seconds (default 10 unless --count or --until-caught-up is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// maxMsgNums per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: u32,
    /// suspendTimeoutMillis of a long-polling pull.
    #[arg(long, default_value_t = 15000)]
    pub suspend_ms: u64,
    /// Connections per broker (queues are spread over them).
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Write the end-to-end latency curve and throughput over time to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Timeout of a non-suspended request, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Broker process to account CPU to (default: the local process listening on the broker port).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Tokio worker threads of the consumer.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// A catch-up read gives up after this many PULL_NOT_FOUND answers in a row without progress
/// (10 ms apart) below the max offset it saw at the start.
const CATCH_UP_STALLS_MAX: u32 = 300;

/// A validated consume run.
#[derive(Debug, Clone)]
pub struct ConsumePlan {
    pub topic: String,
    pub group: String,
    pub from_start: bool,
    pub until_caught_up: bool,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub pull_batch: u32,
    pub suspend: Duration,
    pub connections: u32,
    pub timeout: Duration,
}

impl ConsumePlan {
    pub fn from_args(a: &ConsumeArgs) -> Result<Self, String> {
        if a.pull_batch == 0 || a.connections == 0 {
            return Err("--pull-batch and --connections must be at least 1".into());
        }
        let duration = match a.duration {
            Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
            Some(_) => return Err("--duration must be positive".into()),
            None if a.count.is_none() && !a.until_caught_up => Some(Duration::from_secs(10)),
            None => None,
        };
        if a.count == Some(0) {
            return Err("--count must be at least 1".into());
        }
        Ok(Self {
            topic: a.topic.clone(),
            group: a.group.clone(),
            from_start: a.from_start,
            until_caught_up: a.until_caught_up,
            duration,
            count: a.count,
            pull_batch: a.pull_batch,
            suspend: Duration::from_millis(a.suspend_ms.max(1)),
            connections: a.connections,
            timeout: Duration::from_millis(a.timeout_ms.max(1)),
        })
    }
}

struct Shared {
    plan: ConsumePlan,
    clock: Arc<dyn Clock>,
    start_ns: u64,
    deadline_ns: Option<u64>,
    received: AtomicU64,
    /// Catch-up runs: messages between each queue's start offset and the max offset at start.
    backlog: AtomicU64,
    live: Arc<Live>,
}

impl Shared {
    fn done(&self) -> bool {
        self.plan
            .count
            .is_some_and(|n| self.received.load(Ordering::Relaxed) >= n)
            || self.deadline_ns.is_some_and(|d| self.clock.now_ns() >= d)
    }
}

/// What a consume run measured.
#[derive(Debug)]
pub struct ConsumeOutcome {
    pub rec: Recorder,
    /// The whole run for a timed run, up to the last message otherwise.
    pub elapsed_ns: u64,
    /// Catch-up runs: how many messages the backlog held when the run started.
    pub backlog_msgs: Option<u64>,
}

/// Runs a consume plan over `queues`.
pub async fn run_plan(
    plan: ConsumePlan,
    queues: Vec<QueueTarget>,
    connector: &dyn Connector,
    live: Arc<Live>,
) -> Result<ConsumeOutcome, String> {
    if queues.is_empty() {
        return Err("no queue to pull from".into());
    }
    let mut conns: std::collections::HashMap<String, Vec<Arc<dyn Rpc>>> = Default::default();
    for q in &queues {
        if !conns.contains_key(&q.addr) {
            let v = (0..plan.connections)
                .map(|_| connector.connect(&q.addr))
                .collect::<Result<Vec<_>, _>>()?;
            conns.insert(q.addr.clone(), v);
        }
    }
    let clock: Arc<dyn Clock> = Arc::new(MonoClock::new());
    let start_ns = clock.now_ns();
    let deadline_ns = plan
        .duration
        .map(|d| start_ns + u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
    let timed = plan.duration.is_some() && plan.count.is_none() && !plan.until_caught_up;
    let shared = Arc::new(Shared {
        plan,
        clock: Arc::clone(&clock),
        start_ns,
        deadline_ns,
        received: AtomicU64::new(0),
        backlog: AtomicU64::new(0),
        live,
    });
    let mut tasks = Vec::new();
    for (i, q) in queues.into_iter().enumerate() {
        let Some(rpc) = conns
            .get(&q.addr)
            .and_then(|v| v.get(i % v.len()))
            .map(Arc::clone)
        else {
            continue;
        };
        let sh = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move { pull_queue(sh, q, rpc).await }));
    }
    let mut rec = Recorder::new();
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => rec.merge(&r),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(format!("pull task failed: {e}")),
        }
    }
    let wall = clock.now_ns().saturating_sub(start_ns);
    let elapsed_ns = if timed || rec.msgs == 0 {
        wall
    } else {
        rec.last_ns
    };
    let backlog_msgs = shared
        .plan
        .until_caught_up
        .then(|| shared.backlog.load(Ordering::Relaxed));
    Ok(ConsumeOutcome {
        rec,
        elapsed_ns,
        backlog_msgs,
    })
}

/// GET_MIN_OFFSET or GET_MAX_OFFSET of one queue.
async fn query_offset(
    rpc: &dyn Rpc,
    max: bool,
    topic: &str,
    queue_id: i32,
    timeout: Duration,
) -> Result<i64, String> {
    let (code, ext) = if max {
        let h = GetMaxOffsetRequestHeader {
            topic: topic.to_string(),
            queue_id,
            committed: None,
        };
        (RequestCode::GET_MAX_OFFSET, h.to_ext())
    } else {
        let h = GetMinOffsetRequestHeader {
            topic: topic.to_string(),
            queue_id,
        };
        (RequestCode::GET_MIN_OFFSET, h.to_ext())
    };
    let r = rpc.call(request(code, ext, None), timeout).await?;
    if r.code != ResponseCode::SUCCESS {
        return Err(format!(
            "offset query {code} for {topic}:{queue_id}: code {} {}",
            r.code,
            r.remark.unwrap_or_default()
        ));
    }
    OffsetResponseHeader::from_ext(&r.ext_fields)
        .map(|h| h.offset)
        .map_err(|e| format!("offset query {code} for {topic}:{queue_id}: {e}"))
}

fn unix_now_ns() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Pulls one queue until the run ends.
async fn pull_queue(
    sh: Arc<Shared>,
    q: QueueTarget,
    rpc: Arc<dyn Rpc>,
) -> Result<Recorder, String> {
    let plan = &sh.plan;
    let mut rec = Recorder::new();
    let mut offset = query_offset(
        rpc.as_ref(),
        !plan.from_start,
        &plan.topic,
        q.queue_id,
        plan.timeout,
    )
    .await?;
    let stop_at = if plan.until_caught_up {
        let max = query_offset(rpc.as_ref(), true, &plan.topic, q.queue_id, plan.timeout).await?;
        sh.backlog.fetch_add(
            u64::try_from(max.saturating_sub(offset)).unwrap_or(0),
            Ordering::Relaxed,
        );
        Some(max)
    } else {
        None
    };
    let sub_version = i64::try_from(unix_now_ns() / 1_000_000).unwrap_or(0);
    let mut stalls = 0u32;
    loop {
        if sh.done() || stop_at.is_some_and(|s| offset >= s) {
            break;
        }
        // Never hold a pull past the end of a timed run.
        let now = sh.clock.now_ns();
        let left = sh
            .deadline_ns
            .map(|d| Duration::from_nanos(d.saturating_sub(now)));
        let suspend = !plan.until_caught_up;
        let suspend_for = left
            .map_or(plan.suspend, |l| l.min(plan.suspend))
            .max(Duration::from_millis(1));
        // The subscription travels in the request (flag SUBSCRIPTION), so no heartbeat is needed.
        let header = PullMessageRequestHeader {
            consumer_group: plan.group.clone(),
            topic: plan.topic.clone(),
            queue_id: q.queue_id,
            queue_offset: offset,
            max_msg_nums: plan.pull_batch as i32,
            sys_flag: PULL_FLAG_SUBSCRIPTION | if suspend { PULL_FLAG_SUSPEND } else { 0 },
            commit_offset: 0,
            suspend_timeout_millis: suspend_for.as_millis() as i64,
            subscription: Some("*".into()),
            sub_version,
            expression_type: Some("TAG".into()),
            ..Default::default()
        };
        let timeout = if suspend {
            suspend_for + plan.timeout
        } else {
            plan.timeout
        };
        let call = rpc.call(
            request(RequestCode::PULL_MESSAGE, header.to_ext(), None),
            timeout,
        );
        let result = match left {
            Some(l) => match tokio::time::timeout(l + Duration::from_millis(50), call).await {
                Ok(r) => r,
                Err(_) => break, // the run ended while the pull was held
            },
            None => call.await,
        };
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                rec.error();
                sh.live.errors.fetch_add(1, Ordering::Relaxed);
                if rec.errors <= 3 {
                    tracing::warn!("pull {}:{} failed: {e}", plan.topic, q.queue_id);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match r.code {
            ResponseCode::SUCCESS => {
                let offsets = PullMessageResponseHeader::from_ext(&r.ext_fields)
                    .map_err(|e| format!("pull response of {}:{}: {e}", plan.topic, q.queue_id))?;
                let now_unix = unix_now_ns();
                let done = sh.clock.now_ns().saturating_sub(sh.start_ns);
                let (mut n, mut bytes) = (0u64, 0u64);
                // The body is the stored records back to back (§3.6); count what decodes.
                let mut body = body_bytes(&r);
                while !body.is_empty() {
                    match ferrocket_store::decode_record(body) {
                        Ok(m) => {
                            n += 1;
                            bytes += m.body.len() as u64;
                            if let Some(sent) = body_sent_unix_ns(m.body) {
                                rec.latency(now_unix.saturating_sub(sent));
                            }
                            body = body.get(m.total_size as usize..).unwrap_or_default();
                        }
                        Err(e) => {
                            rec.error();
                            tracing::warn!("pull body of {}:{}: {e}", plan.topic, q.queue_id);
                            break;
                        }
                    }
                }
                rec.completed(done, n, bytes);
                sh.received.fetch_add(n, Ordering::Relaxed);
                sh.live.msgs.fetch_add(n, Ordering::Relaxed);
                sh.live.bytes.fetch_add(bytes, Ordering::Relaxed);
                if offsets.next_begin_offset <= offset && n == 0 {
                    rec.error();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                offset = offsets.next_begin_offset.max(offset);
            }
            ResponseCode::PULL_NOT_FOUND
            | ResponseCode::PULL_RETRY_IMMEDIATELY
            | ResponseCode::PULL_OFFSET_MOVED => {
                let before = offset;
                if let Ok(o) = PullMessageResponseHeader::from_ext(&r.ext_fields) {
                    offset = o.next_begin_offset;
                }
                // A catch-up read ends at the max offset it saw at the start (checked at the top
                // of the loop), not at the first PULL_NOT_FOUND: the broker also answers 19 at a
                // ConsumeQueue file boundary (OFFSET_FOUND_NULL, §7.1) or while dispatch lags.
                // Without progress it waits a little and gives up after a while.
                if r.code == ResponseCode::PULL_NOT_FOUND
                    && plan.until_caught_up
                    && offset <= before
                {
                    stalls += 1;
                    if stalls == 1 {
                        tracing::warn!(
                            "pull {}:{} at {before} (< {}): PULL_NOT_FOUND {}",
                            plan.topic,
                            q.queue_id,
                            stop_at.unwrap_or(0),
                            r.remark.as_deref().unwrap_or("")
                        );
                    }
                    if stalls >= CATCH_UP_STALLS_MAX {
                        rec.error();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                } else {
                    stalls = 0;
                }
            }
            other => {
                rec.error();
                sh.live.errors.fetch_add(1, Ordering::Relaxed);
                if rec.errors <= 3 {
                    tracing::warn!(
                        "pull {}:{}: code {other} {}",
                        plan.topic,
                        q.queue_id,
                        r.remark.as_deref().unwrap_or("")
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(rec)
}

/// The `bench consume` command.
pub fn run(args: ConsumeArgs, connector: Arc<dyn Connector>) -> Result<(), String> {
    let plan = ConsumePlan::from_args(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let queues = fetch_route(
            connector.as_ref(),
            &args.namesrv,
            &plan.topic,
            RouteUse::Read,
            plan.timeout,
        )
        .await?;
        let broker_addr = queues.first().map(|t| t.addr.clone()).unwrap_or_default();
        let cpu = super::cpu::BrokerCpu::start(&broker_addr, args.broker_pid);
        let own_cpu0 = super::cpu::own_cpu_s();
        let live = Arc::new(Live::default());
        let progress = Progress::start("consume".into(), Arc::clone(&live));
        let out = run_plan(plan.clone(), queues.clone(), connector.as_ref(), live).await?;
        drop(progress);
        let rec = out.rec;
        let summary = Summary::new(
            "consume",
            &rec,
            out.elapsed_ns,
            cpu.and_then(|c| c.finish()),
        )
        .with("backlog_msgs", out.backlog_msgs)
        .with_environment(&rec, own_cpu0)
        .with("topic", plan.topic.clone())
        .with("group", plan.group.clone())
        .with("queues", queues.len() as u64)
        .with("from_start", plan.from_start)
        .with("until_caught_up", plan.until_caught_up)
        .with(
            "latency",
            "end to end: receive time minus the send time in the body",
        );
        if let Some(path) = &args.plot {
            let title = format!("consume {}", plan.topic);
            super::plot::write_svg(path, &title, "end-to-end latency", &rec)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        println!("{}", summary.to_json_line());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::mock::{MockBroker, MockConnector, ProduceCli, NAMESRV_ADDR};
    use crate::bench::produce::{self, ProducePlan};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: ConsumeArgs,
    }

    fn plan(extra: &[&str]) -> ConsumePlan {
        let mut v = vec!["x", "--namesrv", NAMESRV_ADDR];
        v.extend_from_slice(extra);
        ConsumePlan::from_args(&Cli::try_parse_from(v).unwrap().a).unwrap()
    }

    async fn produce_n(b: &Arc<MockBroker>, n: u64) {
        let a = ProduceCli::try_parse_from(["x", "--count", &n.to_string(), "--size", "100"])
            .unwrap()
            .a;
        let p = ProducePlan::from_args(&a).unwrap();
        let conn = MockConnector {
            broker: Arc::clone(b),
        };
        let t = fetch_route(
            &conn,
            NAMESRV_ADDR,
            "BenchTopic",
            RouteUse::Write,
            p.timeout,
        )
        .await
        .unwrap();
        produce::run_plan(p, t, &conn, Arc::new(Live::default()))
            .await
            .unwrap();
    }

    async fn consume(b: &Arc<MockBroker>, p: ConsumePlan) -> (Recorder, u64, Option<u64>) {
        let conn = MockConnector {
            broker: Arc::clone(b),
        };
        let q = fetch_route(&conn, NAMESRV_ADDR, "BenchTopic", RouteUse::Read, p.timeout)
            .await
            .unwrap();
        let o = run_plan(p, q, &conn, Arc::new(Live::default()))
            .await
            .unwrap();
        (o.rec, o.elapsed_ns, o.backlog_msgs)
    }

    #[test]
    fn argument_defaults() {
        let p = plan(&[]);
        assert_eq!(p.duration, Some(Duration::from_secs(10)));
        assert!(!p.from_start);
        let p = plan(&["--from-start", "--until-caught-up"]);
        assert_eq!(p.duration, None);
        assert_eq!(plan(&["--count", "5"]).duration, None);
    }

    #[tokio::test]
    async fn catch_up_reads_the_whole_backlog_and_stops() {
        let b = MockBroker::new(3);
        produce_n(&b, 100).await;
        let (rec, _, backlog) = consume(
            &b,
            plan(&["--from-start", "--until-caught-up", "--pull-batch", "7"]),
        )
        .await;
        assert_eq!(backlog, Some(100));
        assert_eq!(rec.msgs, 100);
        assert_eq!(rec.bytes, 100 * 100);
        assert_eq!(rec.errors, 0);
        assert_eq!(rec.hist.len(), 100, "one end-to-end sample per message");
    }

    #[tokio::test]
    async fn tail_follower_sees_messages_sent_after_it_started() {
        let b = MockBroker::new(2);
        produce_n(&b, 10).await; // old messages: not read by a tail follower
        let consumer = {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                consume(&b, plan(&["--count", "20", "--suspend-ms", "2000"])).await
            })
        };
        // Give the follower time to ask for the max offsets before producing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        produce_n(&b, 20).await;
        let (rec, _, backlog) = consumer.await.unwrap();
        assert_eq!(backlog, None);
        assert_eq!(rec.msgs, 20);
    }

    #[tokio::test]
    async fn timed_run_ends_while_a_pull_is_held() {
        let b = MockBroker::new(1);
        let t0 = std::time::Instant::now();
        let (rec, elapsed, _) =
            consume(&b, plan(&["--duration", "0.2", "--suspend-ms", "10000"])).await;
        assert_eq!(rec.msgs, 0);
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(elapsed >= 200_000_000);
    }
}
