//! `ferrocket bench produce`: sends SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE over C connections with K
//! requests in flight each, closed loop or open loop at a fixed rate, and reports ack latency.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Semaphore;

use ferrocket_net::header::producer::SendMessageRequestHeaderV2;
use ferrocket_net::{RequestCode, ResponseCode};
use ferrocket_store::{
    encode_properties, PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX as UNIQ_KEY,
    PROPERTY_WAIT_STORE_MSG_OK as WAIT,
};

use super::report::{Live, Progress, Recorder, Summary};
use super::rpc::{fetch_route, request, Connector, Rpc};
use super::sched::{spawn_pacer, Clock, MonoClock, Schedule};
use super::wire::{stamp_body, QueueTarget, RouteUse, UniqKeys, BODY_PREFIX_BYTES};
use crate::broker::message::{batch_item_len, push_batch_item};

/// Largest frame the broker accepts (16 MiB, reference §1.1); requests must stay under it.
const FRAME_LEN_MAX: usize = 16 << 20;

#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    /// Nameserver address (host:port).
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Topic to send to.
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Body size in bytes (at least 12: the first 12 carry a marker and the send time).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Messages per request: 1 sends SEND_MESSAGE_V2, more send SEND_BATCH_MESSAGE.
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Connections per broker.
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub inflight: u32,
    /// Open loop: messages per second, spread evenly; latency counts from each scheduled send time.
    /// Without it the run is closed loop (each slot sends when its previous ack arrives).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Run time in seconds (default 10 when --count is not given).
    #[arg(long, conflicts_with = "count")]
    pub duration: Option<f64>,
    /// Number of messages to send.
    #[arg(long)]
    pub count: Option<u64>,
    /// Write the latency percentile curve and throughput over time to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Producer group name.
    #[arg(long, default_value = "ferrocket_bench_producer")]
    pub group: String,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Broker process to account CPU to (default: the local process listening on the broker port).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Count(u64),
    Duration(Duration),
}

/// A validated produce run.
#[derive(Debug, Clone)]
pub struct ProducePlan {
    pub topic: String,
    pub group: String,
    pub size: usize,
    pub batch: u32,
    pub connections: u32,
    pub inflight: u32,
    pub rate: Option<f64>,
    pub limit: Limit,
    pub timeout: Duration,
}

impl ProducePlan {
    pub fn from_args(a: &ProduceArgs) -> Result<Self, String> {
        if a.size < BODY_PREFIX_BYTES {
            return Err(format!("--size must be at least {BODY_PREFIX_BYTES} bytes"));
        }
        if a.batch == 0 || a.connections == 0 || a.inflight == 0 {
            return Err("--batch, --connections and --inflight must be at least 1".into());
        }
        // Generous per-message overhead (batch framing + properties with UNIQ_KEY and WAIT).
        let request_bytes = (a.size + 80).saturating_mul(a.batch as usize) + 1024;
        if request_bytes > FRAME_LEN_MAX {
            return Err(format!(
                "--size x --batch gives a {request_bytes}-byte request, over the 16 MiB frame limit"
            ));
        }
        if let Some(r) = a.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number of messages per second".into());
            }
        }
        let limit = match (a.count, a.duration) {
            (Some(0), _) => return Err("--count must be at least 1".into()),
            (Some(n), _) => Limit::Count(n),
            (None, Some(d)) if d.is_finite() && d > 0.0 => {
                Limit::Duration(Duration::from_secs_f64(d))
            }
            (None, Some(_)) => return Err("--duration must be positive".into()),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        };
        Ok(Self {
            topic: a.topic.clone(),
            group: a.group.clone(),
            size: a.size,
            batch: a.batch,
            connections: a.connections,
            inflight: a.inflight,
            rate: a.rate,
            limit,
            timeout: Duration::from_millis(a.timeout_ms.max(1)),
        })
    }

    /// Number of requests when the run is bounded by a count (the last one may be short).
    pub fn request_count(&self) -> Option<u64> {
        match self.limit {
            Limit::Count(n) => Some(n.div_ceil(u64::from(self.batch))),
            Limit::Duration(d) => self.rate.map(|r| {
                ((r / f64::from(self.batch)) * d.as_secs_f64())
                    .floor()
                    .max(1.0) as u64
            }),
        }
    }

    /// Messages carried by request `i`.
    pub fn msgs_in_request(&self, i: u64) -> u32 {
        match self.limit {
            Limit::Count(n) => {
                let before = i.saturating_mul(u64::from(self.batch));
                n.saturating_sub(before).min(u64::from(self.batch)) as u32
            }
            Limit::Duration(_) => self.batch,
        }
    }
}

/// The V2 header of a send to `target` (one-letter keys, §2.2).
fn send_header(
    plan: &ProducePlan,
    target: &QueueTarget,
    born_ms: i64,
    properties: String,
    batch: bool,
) -> SendMessageRequestHeaderV2 {
    SendMessageRequestHeaderV2 {
        a: plan.group.clone(),
        b: plan.topic.clone(),
        c: "TBW102".into(),
        d: 4,
        e: target.queue_id,
        f: 0,
        g: born_ms,
        h: 0,
        i: Some(properties),
        j: Some(0),
        k: Some(false),
        m: Some(batch),
        n: Some(target.broker_name.clone()),
        ..Default::default()
    }
}

/// Builds the request for `msgs` messages to `target`, stamping each body with the send time:
/// SEND_MESSAGE_V2 for one message, SEND_BATCH_MESSAGE (§3.5 body) for more. Every message
/// carries its own UNIQ_KEY and WAIT=true, as the Java client sends them.
pub fn build_send(
    plan: &ProducePlan,
    target: &QueueTarget,
    msgs: u32,
    keys: &mut UniqKeys,
    template: &[u8],
) -> ferrocket_net::RemotingCommand {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
    let born_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    if msgs <= 1 {
        let mut body = template.to_vec();
        stamp_body(&mut body, now_ns);
        let props = encode_properties(&[(UNIQ_KEY, keys.next_key().as_str()), (WAIT, "true")]);
        let header = send_header(plan, target, born_ms, props, false);
        return request(
            RequestCode::SEND_MESSAGE_V2,
            header.into_ext(),
            Some(Bytes::from(body)),
        );
    }
    // The batch body is written in one pass into a buffer of the right size: each message's body
    // is copied once (it was copied three times, with the buffer regrowing, which made the tool
    // spend more per message in batches than unbatched).
    let first_props = encode_properties(&[(UNIQ_KEY, keys.next_key().as_str()), (WAIT, "true")]);
    let mut out =
        Vec::with_capacity(msgs as usize * batch_item_len(template.len(), first_props.len()));
    for i in 0..msgs {
        let at = out.len();
        if i == 0 {
            push_batch_item(&mut out, 0, template, &first_props);
        } else {
            let props = encode_properties(&[(UNIQ_KEY, keys.next_key().as_str()), (WAIT, "true")]);
            push_batch_item(&mut out, 0, template, &props);
        }
        let body_at = at + batch_item_len(0, 0) - 2;
        if let Some(body) = out.get_mut(body_at..body_at + template.len()) {
            stamp_body(body, now_ns);
        }
    }
    let header_props = encode_properties(&[(WAIT, "true")]);
    let header = send_header(plan, target, born_ms, header_props, true);
    request(
        RequestCode::SEND_BATCH_MESSAGE,
        header.into_ext(),
        Some(Bytes::from(out)),
    )
}

/// Shared state of the senders.
struct Shared {
    plan: ProducePlan,
    targets: Vec<QueueTarget>,
    /// Connections per broker address: `conns[addr][c]`.
    conns: HashMap<String, Vec<Arc<dyn Rpc>>>,
    next: AtomicU64,
    stop: AtomicBool,
    clock: Arc<dyn Clock>,
    schedule: Option<Schedule>,
    permits: Arc<Semaphore>,
    deadline_ns: Option<u64>,
    total_requests: Option<u64>,
    live: Arc<Live>,
    template: Vec<u8>,
}

/// Runs a produce plan against `targets`. Returns the merged measurements and the wall time.
pub async fn run_plan(
    plan: ProducePlan,
    targets: Vec<QueueTarget>,
    connector: &dyn Connector,
    live: Arc<Live>,
) -> Result<(Recorder, u64), String> {
    if targets.is_empty() {
        return Err("no queue to send to".into());
    }
    let mut conns: HashMap<String, Vec<Arc<dyn Rpc>>> = HashMap::new();
    for t in &targets {
        if !conns.contains_key(&t.addr) {
            let v = (0..plan.connections)
                .map(|_| connector.connect(&t.addr))
                .collect::<Result<Vec<_>, _>>()?;
            conns.insert(t.addr.clone(), v);
        }
    }
    let clock: Arc<dyn Clock> = Arc::new(MonoClock::new());
    let start_ns = clock.now_ns();
    let total_requests = plan.request_count();
    let schedule = plan.rate.map(|r| Schedule {
        start_ns,
        rate_per_s: r / f64::from(plan.batch),
        total: total_requests.unwrap_or(u64::MAX),
    });
    let deadline_ns = match plan.limit {
        Limit::Duration(d) if plan.rate.is_none() => {
            Some(start_ns + u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2))
        }
        _ => None,
    };
    let mut template = vec![0u8; plan.size];
    for (i, b) in template.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    let slots = plan.connections as usize * plan.inflight as usize;
    let shared = Arc::new(Shared {
        plan,
        targets,
        conns,
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        clock: Arc::clone(&clock),
        schedule,
        permits: Arc::new(Semaphore::new(0)),
        deadline_ns,
        total_requests,
        live,
        template,
    });
    let pacer_stop = Arc::new(AtomicBool::new(false));
    let pacer = schedule.map(|s| {
        spawn_pacer(
            s,
            Arc::clone(&clock),
            Arc::clone(&shared.permits),
            Arc::clone(&pacer_stop),
            slots as u64,
        )
    });
    let mut tasks = Vec::with_capacity(slots);
    for slot in 0..slots {
        let sh = Arc::clone(&shared);
        tasks.push(tokio::spawn(
            async move { sender(sh, slot, start_ns).await },
        ));
    }
    let mut rec = Recorder::new();
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(r) => rec.merge(&r),
            Err(e) => first_err = Some(format!("sender task failed: {e}")),
        }
    }
    pacer_stop.store(true, Ordering::Relaxed);
    if let Some(p) = pacer {
        let _ = p.join();
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let elapsed = clock.now_ns().saturating_sub(start_ns);
    Ok((rec, elapsed))
}

/// One sending slot: takes request indices until the run ends.
async fn sender(sh: Arc<Shared>, slot: usize, start_ns: u64) -> Recorder {
    let mut rec = Recorder::new();
    let mut prefix = [0u8; 10];
    prefix[..4].copy_from_slice(&std::process::id().to_be_bytes());
    prefix[4..8].copy_from_slice(&(slot as u32).to_be_bytes());
    prefix[8..].copy_from_slice(&(rand::random::<u16>()).to_be_bytes());
    let mut keys = UniqKeys::new(prefix);
    let conn_idx = slot % sh.plan.connections as usize;
    loop {
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        if sh.schedule.is_some() {
            match sh.permits.acquire().await {
                Ok(p) => p.forget(),
                Err(_) => break,
            }
        }
        let i = sh.next.fetch_add(1, Ordering::Relaxed);
        if sh.total_requests.is_some_and(|n| i >= n) {
            break;
        }
        let now = sh.clock.now_ns();
        if sh.deadline_ns.is_some_and(|d| now >= d) {
            break;
        }
        let due = sh.schedule.map_or(now, |s| s.due_ns(i));
        let target = &sh.targets[(i % sh.targets.len() as u64) as usize];
        let Some(rpc) = sh.conns.get(&target.addr).and_then(|v| v.get(conn_idx)) else {
            rec.error();
            continue;
        };
        let msgs = sh.plan.msgs_in_request(i);
        let cmd = build_send(&sh.plan, target, msgs, &mut keys, &sh.template);
        let result = rpc.call(cmd, sh.plan.timeout).await;
        let done = sh.clock.now_ns();
        match result {
            // FLUSH_DISK_TIMEOUT and the slave codes mean "stored, but not as promised": errors
            // for a benchmark.
            Ok(r) if r.code == ResponseCode::SUCCESS => {
                let bytes = u64::from(msgs) * sh.plan.size as u64;
                // Open loop: from the due time, so waiting behind slow requests counts.
                rec.latency(
                    sh.schedule
                        .map_or(done.saturating_sub(due), |s| s.latency_ns(i, done)),
                );
                rec.completed(done.saturating_sub(start_ns), u64::from(msgs), bytes);
                sh.live.msgs.fetch_add(u64::from(msgs), Ordering::Relaxed);
                sh.live.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Ok(r) => {
                rec.error();
                sh.live.errors.fetch_add(1, Ordering::Relaxed);
                if rec.errors <= 3 {
                    tracing::warn!(
                        code = r.code,
                        remark = r.remark.as_deref().unwrap_or(""),
                        "send failed"
                    );
                }
            }
            Err(e) => {
                rec.error();
                sh.live.errors.fetch_add(1, Ordering::Relaxed);
                if rec.errors <= 3 {
                    tracing::warn!("send failed: {e}");
                }
                // A dead connection fails at once; do not spin a core on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    rec
}

/// The `bench produce` command.
pub fn run(args: ProduceArgs, connector: Arc<dyn Connector>) -> Result<(), String> {
    let plan = ProducePlan::from_args(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let targets = fetch_route(
            connector.as_ref(),
            &args.namesrv,
            &plan.topic,
            RouteUse::Write,
            plan.timeout,
        )
        .await?;
        let broker_addr = targets.first().map(|t| t.addr.clone()).unwrap_or_default();
        let cpu = super::cpu::BrokerCpu::start(&broker_addr, args.broker_pid);
        let syncs0 =
            super::rpc::broker_sync_count(connector.as_ref(), &broker_addr, plan.timeout).await;
        let own_cpu0 = super::cpu::own_cpu_s();
        let live = Arc::new(Live::default());
        let label = format!("produce {}B x{}", plan.size, plan.batch);
        let progress = Progress::start(label.clone(), Arc::clone(&live));
        let (rec, elapsed) =
            run_plan(plan.clone(), targets.clone(), connector.as_ref(), live).await?;
        drop(progress);
        let broker_cpu = cpu.and_then(|c| c.finish());
        let syncs1 =
            super::rpc::broker_sync_count(connector.as_ref(), &broker_addr, plan.timeout).await;
        let broker_syncs = syncs0.zip(syncs1).map(|(a, b)| b.saturating_sub(a));
        let mut summary = Summary::new("produce", &rec, elapsed, broker_cpu)
            .with_environment(&rec, own_cpu0)
            .with("topic", plan.topic.clone())
            .with("size", plan.size as u64)
            .with("batch", plan.batch)
            .with("connections", plan.connections)
            .with("inflight", plan.inflight)
            .with("rate", plan.rate)
            .with("queues", targets.len() as u64)
            .with(
                "requests_per_s",
                super::report::round1(rec.hist.len() as f64 / (elapsed.max(1) as f64 / 1e9)),
            )
            .with(
                "latency",
                if plan.rate.is_some() {
                    "from scheduled send time (open loop)"
                } else {
                    "ack latency per request (closed loop)"
                },
            );
        // The broker's CommitLog syncs during the run (group commits under SYNC_FLUSH; the
        // async flusher's syncs otherwise), when it tells them.
        if let Some(n) = broker_syncs {
            let secs = elapsed.max(1) as f64 / 1e9;
            summary = summary
                .with("broker_syncs", n)
                .with("broker_syncs_per_s", super::report::round1(n as f64 / secs))
                .with(
                    "requests_per_sync",
                    super::report::round1(rec.hist.len() as f64 / n.max(1) as f64),
                );
        }
        if let Some(path) = &args.plot {
            let title = format!(
                "produce {} B x{} c{} k{}{}",
                plan.size,
                plan.batch,
                plan.connections,
                plan.inflight,
                plan.rate.map(|r| format!(" @{r}/s")).unwrap_or_default()
            );
            super::plot::write_svg(path, &title, "ack latency", &rec)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        println!("{}", summary.to_json_line());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::mock::{
        MockBroker, MockConnector, ProduceCli as Cli, BROKER_ADDR, NAMESRV_ADDR,
    };
    use clap::Parser;

    fn args(extra: &[&str]) -> ProduceArgs {
        let mut v = vec!["x", "--namesrv", NAMESRV_ADDR];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().a
    }

    #[test]
    fn argument_parsing_and_validation() {
        let a = args(&[
            "--size",
            "1024",
            "--batch",
            "32",
            "--connections",
            "4",
            "--inflight",
            "8",
        ]);
        let p = ProducePlan::from_args(&a).unwrap();
        assert_eq!(
            (p.size, p.batch, p.connections, p.inflight),
            (1024, 32, 4, 8)
        );
        assert_eq!(p.limit, Limit::Duration(Duration::from_secs(10)));
        assert_eq!(p.request_count(), None);
        let p = ProducePlan::from_args(&args(&["--count", "70", "--batch", "32"])).unwrap();
        assert_eq!(p.request_count(), Some(3));
        assert_eq!(
            (0..3).map(|i| p.msgs_in_request(i)).collect::<Vec<_>>(),
            vec![32, 32, 6]
        );
        let p = ProducePlan::from_args(&args(&[
            "--rate",
            "1000",
            "--duration",
            "2",
            "--batch",
            "10",
        ]))
        .unwrap();
        assert_eq!(p.request_count(), Some(200));
        assert!(Cli::try_parse_from(["x", "--count", "5", "--duration", "1"]).is_err());
        for bad in [
            &["--size", "4"][..],
            &["--batch", "0"],
            &["--rate", "0"],
            &["--count", "0"],
            &["--duration=-1"],
            &["--size", "1000000", "--batch", "32"],
        ] {
            assert!(ProducePlan::from_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    async fn produce(broker: &Arc<MockBroker>, extra: &[&str]) -> (Recorder, u64) {
        let plan = ProducePlan::from_args(&args(extra)).unwrap();
        let conn = MockConnector {
            broker: Arc::clone(broker),
        };
        let targets = fetch_route(
            &conn,
            NAMESRV_ADDR,
            "BenchTopic",
            RouteUse::Write,
            plan.timeout,
        )
        .await
        .unwrap();
        run_plan(plan, targets, &conn, Arc::new(Live::default()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn closed_loop_sends_exactly_count_over_all_queues() {
        let b = MockBroker::new(4);
        let (rec, _) = produce(
            &b,
            &["--count", "100", "--connections", "2", "--inflight", "3"],
        )
        .await;
        assert_eq!(rec.msgs, 100);
        assert_eq!(rec.errors, 0);
        assert_eq!(rec.hist.len(), 100);
        assert_eq!(rec.bytes, 100 * 128);
        assert_eq!(b.total_stored(), 100);
        let stored = b.stored.lock();
        assert_eq!(stored.len(), 4);
        assert!(stored.values().all(|v| v.len() == 25));
    }

    #[tokio::test]
    async fn the_brokers_sync_count_is_read_before_and_after() {
        let b = MockBroker::new(2);
        let conn = MockConnector {
            broker: Arc::clone(&b),
        };
        let t = Duration::from_secs(1);
        let before = super::super::rpc::broker_sync_count(&conn, BROKER_ADDR, t).await;
        assert_eq!(before, Some(0));
        let _ = produce(&b, &["--count", "12"]).await;
        let after = super::super::rpc::broker_sync_count(&conn, BROKER_ADDR, t).await;
        assert_eq!(after, Some(12), "the mock counts one sync per send");
        // A broker that cannot be asked gives no figure rather than a wrong one.
        assert_eq!(
            super::super::rpc::broker_sync_count(&conn, "192.0.2.1:10911", t).await,
            None
        );
    }

    #[tokio::test]
    async fn batches_use_send_batch_and_carry_stamped_bodies() {
        let b = MockBroker::new(2);
        let (rec, _) = produce(&b, &["--count", "70", "--batch", "32", "--size", "64"]).await;
        assert_eq!(rec.msgs, 70);
        assert_eq!(rec.hist.len(), 3, "one ack latency per request");
        assert_eq!(b.batch_requests.load(Ordering::SeqCst), 3);
        assert_eq!(b.total_stored(), 70);
        for recs in b.stored.lock().values() {
            for r in recs {
                let m = ferrocket_store::decode_record(r).unwrap();
                assert_eq!(m.body.len(), 64);
                assert!(crate::bench::wire::body_sent_unix_ns(m.body).is_some());
                // Past the stamp, every body is the template.
                let tail: Vec<u8> = (12..64).map(|i| b'a' + (i % 26) as u8).collect();
                assert_eq!(&m.body[12..], &tail[..]);
            }
        }
    }

    /// A batch request carries every message once: the template body stamped with the send
    /// time, its own UNIQ_KEY and WAIT=true, in a body the broker's parser accepts.
    #[test]
    fn a_batch_request_carries_distinct_keys_and_stamped_bodies() {
        let plan = ProducePlan::from_args(&args(&["--batch", "5", "--size", "40"])).unwrap();
        let target = QueueTarget {
            broker_name: "b".into(),
            addr: BROKER_ADDR.into(),
            queue_id: 1,
        };
        let template: Vec<u8> = (0..40u8).collect();
        let mut keys = UniqKeys::new([7; 10]);
        let cmd = build_send(&plan, &target, 5, &mut keys, &template);
        assert_eq!(cmd.code, RequestCode::SEND_BATCH_MESSAGE);
        let ferrocket_net::Body::Bytes(body) = &cmd.body else {
            panic!("batch body expected");
        };
        let items = crate::broker::message::parse_batch(body).unwrap();
        assert_eq!(items.len(), 5);
        let mut seen = std::collections::HashSet::new();
        for it in &items {
            assert!(crate::bench::wire::body_sent_unix_ns(&it.body).is_some());
            assert_eq!(
                &it.body[BODY_PREFIX_BYTES..],
                &template[BODY_PREFIX_BYTES..]
            );
            let key = crate::broker::message::property(&it.properties, "UNIQ_KEY").unwrap();
            assert!(seen.insert(key.to_string()));
            assert_eq!(
                crate::broker::message::property(&it.properties, "WAIT"),
                Some("true")
            );
        }
    }

    #[tokio::test]
    async fn open_loop_never_sends_early() {
        let b = MockBroker::new(1);
        // 40 requests at 2000/s: the last is due 19.5 ms after the start.
        let (rec, elapsed) =
            produce(&b, &["--count", "40", "--rate", "2000", "--inflight", "4"]).await;
        assert_eq!(rec.msgs, 40);
        assert!(elapsed >= 19_500_000, "finished after {elapsed} ns");
    }

    #[tokio::test]
    async fn failed_sends_are_counted_not_stored() {
        let b = Arc::new(MockBroker {
            queues: 1,
            fail_every: 5,
            ..Default::default()
        });
        let (rec, _) = produce(&b, &["--count", "20"]).await;
        assert_eq!(rec.errors, 4);
        assert_eq!(rec.msgs, 16);
        assert_eq!(b.total_stored(), 16);
    }
}
