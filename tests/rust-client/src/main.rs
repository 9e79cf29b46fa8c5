//! Second-client interop check: rocketmq-client-rust produces N messages to a Ferrocket
//! nameserver/broker, consumes them back with a push consumer and checks every field.
//!
//! Usage: `ferrocket-rust-client-check --namesrv 127.0.0.1:9876 [--count 50] [--topic T]
//! [--group G] [--timeout-secs 60]`. Exit code 0 when every message came back exactly as sent,
//! 1 on a mismatch or a timeout, 2 on bad arguments. Messages vary in size (one in ten is over
//! 4 KiB, so the client compresses it), tag, key and a user property.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use rocketmq_client_rust::ClientError;
use rocketmq_client_rust::ClientResult;
use rocketmq_client_rust::ClientRuntime;
use rocketmq_client_rust::ClientRuntimeConfig;
use rocketmq_client_rust::ConsumeConcurrentlyContext;
use rocketmq_client_rust::ConsumeConcurrentlyStatus;
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_client_rust::DefaultMQPushConsumer;
use rocketmq_client_rust::MQPushConsumer;
use rocketmq_client_rust::MessageListenerConcurrently;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::RuntimeConfig;
use rocketmq_runtime::RuntimeOwner;

/// What the producer sent for one sequence number, and what the consumer must see.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    body: Vec<u8>,
    tag: String,
    key: String,
    seq_prop: String,
}

fn expected(i: usize) -> Expected {
    // One in ten bodies is larger than the client's 4 KiB compression threshold.
    let len = if i % 10 == 3 {
        6000 + i
    } else {
        1 + (i * 37) % 300
    };
    let mut body = format!("rust-client-{i}:").into_bytes();
    let mut x: u32 = 0x9e37_79b9 ^ (i as u32);
    while body.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // printable ASCII only (some clients treat bodies as text)
        body.push(b'!' + (x % 90) as u8);
    }
    body.truncate(len);
    Expected {
        body,
        tag: if i.is_multiple_of(2) {
            "TagA".into()
        } else {
            "TagB".into()
        },
        key: format!("rkey-{i}"),
        seq_prop: i.to_string(),
    }
}

struct Args {
    namesrv: String,
    count: usize,
    topic: String,
    group: String,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let pid = std::process::id();
    let mut a = Args {
        namesrv: String::new(),
        count: 50,
        topic: format!("RustClientTopic{pid}"),
        group: format!("RustClientGroup{pid}"),
        timeout: Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--namesrv" => a.namesrv = val()?,
            "--count" => a.count = val()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--topic" => a.topic = val()?,
            "--group" => a.group = val()?,
            "--timeout-secs" => {
                a.timeout =
                    Duration::from_secs(val()?.parse().map_err(|e| format!("--timeout-secs: {e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.namesrv.is_empty() {
        return Err("--namesrv HOST:PORT is required".into());
    }
    Ok(a)
}

/// Received messages by sequence number (a message may legally arrive more than once).
type Received = Arc<Mutex<BTreeMap<usize, Vec<Expected>>>>;

struct Collector {
    received: Received,
    problems: Arc<Mutex<Vec<String>>>,
}

impl MessageListenerConcurrently for Collector {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        for m in msgs {
            let inner = m.message_inner();
            let seq_prop = inner.property("seq").unwrap_or_default().to_string();
            let Ok(seq) = seq_prop.parse::<usize>() else {
                if let Ok(mut p) = self.problems.lock() {
                    p.push(format!("message without a numeric seq property: {m:?}"));
                }
                continue;
            };
            let got = Expected {
                body: m.body().map(|b| b.to_vec()).unwrap_or_default(),
                tag: inner.tags().unwrap_or_default().to_string(),
                key: inner.keys().unwrap_or_default().join(" "),
                seq_prop,
            };
            if let Ok(mut r) = self.received.lock() {
                r.entry(seq).or_default().push(got);
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

async fn run(args: &Args, client_runtime: Arc<ClientRuntime>) -> Result<(), String> {
    let mut producer = DefaultMQProducer::builder(client_runtime.clone())
        .producer_group(format!("{}_P", args.group))
        .name_server_addr(args.namesrv.clone())
        .build();
    producer
        .start()
        .await
        .map_err(|e| format!("producer start: {e}"))?;
    let t0 = Instant::now();
    let mut sent: HashMap<usize, Expected> = HashMap::new();
    for i in 0..args.count {
        let e = expected(i);
        let msg = Message::builder()
            .topic(args.topic.as_str())
            .tags(e.tag.as_str())
            .key(e.key.as_str())
            .body_slice(&e.body)
            .raw_property("seq", e.seq_prop.as_str())
            .map_err(|err| format!("raw_property: {err}"))?
            .build()
            .map_err(|err| format!("message build: {err}"))?;
        let res = producer
            .send_with_timeout(msg, 5000)
            .await
            .map_err(|err| format!("send #{i}: {err}"))?;
        match res {
            Some(r) => {
                let status = format!("{:?}", r.send_status);
                if !status.contains("Ok") && !status.contains("OK") {
                    return Err(format!("send #{i}: status {status}"));
                }
            }
            None => return Err(format!("send #{i}: no send result")),
        }
        sent.insert(i, e);
    }
    println!(
        "rust-client: sent {} messages in {:?}",
        args.count,
        t0.elapsed()
    );
    producer.shutdown().await;

    let received: Received = Arc::new(Mutex::new(BTreeMap::new()));
    let problems = Arc::new(Mutex::new(Vec::new()));
    let mut consumer = DefaultMQPushConsumer::builder(client_runtime.clone())
        .consumer_group(args.group.clone())
        .name_server_addr(args.namesrv.clone())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer
        .subscribe(args.topic.as_str(), "*")
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    consumer.register_message_listener_concurrently(Collector {
        received: received.clone(),
        problems: problems.clone(),
    });
    consumer
        .start()
        .await
        .map_err(|e| format!("consumer start: {e}"))?;
    let deadline = Instant::now() + args.timeout;
    loop {
        let n = received.lock().map(|r| r.len()).unwrap_or(0);
        if n >= args.count || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.shutdown().await;

    let mut errors: Vec<String> = problems.lock().map(|p| p.clone()).unwrap_or_default();
    let got = received.lock().map(|r| r.clone()).unwrap_or_default();
    for i in 0..args.count {
        match got.get(&i) {
            None => errors.push(format!("message #{i} never consumed")),
            Some(copies) => {
                for c in copies {
                    if Some(c) != sent.get(&i) {
                        errors.push(format!(
                            "message #{i} differs: got body {} bytes tag {:?} key {:?}, sent body {} bytes tag {:?} key {:?}",
                            c.body.len(),
                            c.tag,
                            c.key,
                            sent.get(&i).map(|s| s.body.len()).unwrap_or(0),
                            sent.get(&i).map(|s| s.tag.clone()),
                            sent.get(&i).map(|s| s.key.clone()),
                        ));
                    }
                }
            }
        }
    }
    for k in got.keys() {
        if *k >= args.count {
            errors.push(format!("unexpected message #{k}"));
        }
    }
    if errors.is_empty() {
        println!(
            "rust-client: OK, {} messages consumed back intact in {:?}",
            args.count,
            t0.elapsed()
        );
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rust-client: {e}");
            return ExitCode::from(2);
        }
    };
    let owner = match RuntimeOwner::plan(RuntimeConfig {
        thread_name: "ferrocket-rust-client-check".to_string(),
        ..Default::default()
    })
    .map_err(|e| format!("{e}"))
    .and_then(|p| p.build().map_err(|e| format!("{e}")))
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rust-client: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome: Result<(), String> = (|| {
        let telemetry = rocketmq_observability::install_global(
            &rocketmq_observability::TelemetryBootstrapConfig::default(),
        )
        .map_err(|e| format!("telemetry: {e}"))?;
        let client_runtime = ClientRuntime::try_new(
            owner.root_context().component("client"),
            ClientRuntimeConfig::default(),
            telemetry.handle(),
        )
        .map_err(|e: ClientError| format!("client runtime: {e}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio: {e}"))?;
        let r = rt.block_on(async {
            let r = run(&args, client_runtime.clone()).await;
            let _ = client_runtime.shutdown().await;
            let _ = owner.shutdown_tasks().await;
            r
        });
        let _ = owner.shutdown_background();
        let _ = telemetry.shutdown();
        r
    })();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust-client: FAILED\n{e}");
            ExitCode::from(1)
        }
    }
}
