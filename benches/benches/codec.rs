//! Header encode/decode (JSON and ROCKETMQ binary) against a memcpy of the same frame, measured in
//! the same run; prints the ratio to memcpy per operation.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use ferrocket_net::header::{PullMessageResponseHeader, SendMessageRequestHeaderV2};
use ferrocket_net::{RemotingCommand, RequestCode, SerializeType};

/// Nanoseconds per operation, by bench id, for the ratio table.
static RESULTS: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record(id: &str, iters: u64, elapsed: Duration) {
    let mut r = RESULTS.lock().unwrap();
    let e = r.entry(id.to_owned()).or_insert((0, Duration::ZERO));
    e.0 += iters;
    e.1 += elapsed;
}

/// A SEND_MESSAGE_V2 request as the C++/Java clients write it (ACL keys, properties).
fn send_request() -> RemotingCommand {
    let h = SendMessageRequestHeaderV2 {
        a: "please_rename_unique_group_name".into(),
        b: "TopicTest".into(),
        c: "TBW102".into(),
        d: 4,
        e: 3,
        f: 0,
        g: 1_700_000_000_123,
        h: 0,
        i: Some("UNIQ_KEY\u{1}7F0000011F8B18B4AAC2745C7B2C0000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}".into()),
        j: Some(0),
        k: Some(false),
        l: Some(16),
        m: Some(false),
        n: Some("broker-a".into()),
    };
    let mut cmd = RemotingCommand::request_with(RequestCode::SEND_MESSAGE_V2, &h)
        .with_ext("AccessKey", "")
        .with_ext("Signature", "")
        .with_ext("OnsChannel", "");
    cmd.opaque = 12345;
    cmd.body = ferrocket_net::Body::Bytes(Bytes::from(vec![b'x'; 128]));
    cmd
}

fn pull_response() -> RemotingCommand {
    let mut cmd = RemotingCommand::response(0, "FOUND").with_header(&PullMessageResponseHeader {
        suggest_which_broker_id: 0,
        next_begin_offset: 1_234_567,
        min_offset: 0,
        max_offset: 1_234_600,
        ..Default::default()
    });
    cmd.opaque = 987;
    cmd
}

fn bench(c: &mut Criterion) {
    for (name, cmd) in [
        ("send_v2_request", send_request()),
        ("pull_response", pull_response()),
    ] {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let enc = match st {
                SerializeType::Json => "json",
                SerializeType::RocketMq => "binary",
            };
            let frame = cmd.encode(st);
            let mut g = c.benchmark_group(format!("codec/{name}/{enc}"));
            g.throughput(Throughput::Bytes(frame.len() as u64));
            g.measurement_time(Duration::from_secs(2));
            g.warm_up_time(Duration::from_millis(500));

            let id = format!("{name}/{enc}/memcpy");
            let mut dst = vec![0u8; frame.len()];
            g.bench_function("memcpy_frame", |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        dst.copy_from_slice(black_box(&frame));
                        black_box(&mut dst);
                    }
                    let e = t.elapsed();
                    record(&id, iters, e);
                    e
                })
            });
            let id = format!("{name}/{enc}/encode");
            g.bench_function("encode", |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(black_box(&cmd).encode(st));
                    }
                    let e = t.elapsed();
                    record(&id, iters, e);
                    e
                })
            });
            let id = format!("{name}/{enc}/decode");
            let body = frame.slice(4..);
            g.bench_function("decode", |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(RemotingCommand::decode(black_box(body.clone())).ok());
                    }
                    let e = t.elapsed();
                    record(&id, iters, e);
                    e
                })
            });
            g.finish();
        }
    }
}

/// The broker's send path: the frame decoded and its typed send header taken from the
/// extFields (fast JSON scanner + `take_for`), against the general path (serde + `decode_for`)
/// and a memcpy of the same frame, in the same run.
fn bench_send_header(c: &mut Criterion) {
    use ferrocket_net::header::json;
    use ferrocket_net::header::SendMessageRequestHeader;
    let cmd = send_request();
    let frame = cmd.encode(SerializeType::Json);
    let body = frame.slice(4..);
    // The JSON header bytes alone, for the general path (serde has no frame splitting).
    let header_len =
        usize::try_from(u32::from_be_bytes([0, frame[5], frame[6], frame[7]])).unwrap();
    let header = frame.slice(8..8 + header_len);
    let mut g = c.benchmark_group("codec/send_v2_typed/json");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    let mut dst = vec![0u8; frame.len()];
    g.bench_function("memcpy_frame", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                dst.copy_from_slice(black_box(&frame));
                black_box(&mut dst);
            }
            let e = t.elapsed();
            record("send_v2_typed/json/memcpy", iters, e);
            e
        })
    });
    g.bench_function("decode_typed", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let mut req = RemotingCommand::decode(black_box(body.clone())).unwrap();
                let ext = std::mem::take(&mut req.ext_fields);
                black_box(SendMessageRequestHeader::take_for(req.code, ext).unwrap());
                black_box(req);
            }
            let e = t.elapsed();
            record("send_v2_typed/json/decode_typed", iters, e);
            e
        })
    });
    g.bench_function("decode_typed_general", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let req = json::decode_reference(black_box(&header)).unwrap();
                black_box(SendMessageRequestHeader::decode_for(req.code, &req.ext_fields).unwrap());
                black_box(req);
            }
            let e = t.elapsed();
            record("send_v2_typed/json/decode_typed_general", iters, e);
            e
        })
    });
    g.finish();
}

fn print_ratios() {
    let r = RESULTS.lock().unwrap();
    let ns = |k: &str| {
        r.get(k)
            .map(|(n, d)| d.as_nanos() as f64 / (*n).max(1) as f64)
    };
    println!("\ncodec: ns per op and ratio to memcpy of the same frame (same run)");
    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "op", "ns/op", "memcpy", "ratio"
    );
    for key in r.keys() {
        if key.ends_with("/memcpy") {
            continue;
        }
        let base = key
            .rsplit_once('/')
            .map(|(p, _)| format!("{p}/memcpy"))
            .unwrap_or_default();
        if let (Some(op), Some(mc)) = (ns(key), ns(&base)) {
            println!(
                "{key:<34} {op:>10.1} {mc:>10.1} {:>7.1}x",
                op / mc.max(0.001)
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    bench_send_header(&mut c);
    c.final_summary();
    print_ratios();
}
