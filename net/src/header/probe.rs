//! Instruction-count probe (test only, ignored): the header work of one 128 B send as the bench
//! tool and the broker do it, each step in its own non-inlined function so callgrind reports it
//! per call. Run: `CG_N=10000 valgrind --tool=callgrind <net test binary> --ignored
//! --exact header::probe::send_header_work`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;

use crate::command::{Body, RemotingCommand};
use crate::frame::SerializeType;
use crate::header::codes::RequestCode;
use crate::header::producer::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};

/// The request the bench tool sends (server/src/bench/produce.rs `send_header`).
fn tool_request() -> RemotingCommand {
    let h = SendMessageRequestHeaderV2 {
        a: "ferrocket_bench_producer".into(),
        b: "BenchTopic".into(),
        c: "TBW102".into(),
        d: 4,
        e: 2,
        f: 0,
        g: 1_763_790_000_123,
        h: 0,
        i: Some("UNIQ_KEY\u{1}7F00000100002A9F0000000000000001\u{2}WAIT\u{1}true".into()),
        j: Some(0),
        k: Some(false),
        m: Some(false),
        n: Some("broker-a".into()),
        ..Default::default()
    };
    let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2);
    cmd.language = "RUST".into();
    cmd.version = 479;
    cmd.opaque = 123_456;
    cmd.ext_fields = h.into_ext();
    cmd.body = Body::Bytes(Bytes::from(vec![b'x'; 128]));
    cmd
}

#[inline(never)]
fn broker_decode(frame: Bytes) -> RemotingCommand {
    RemotingCommand::decode(frame).unwrap()
}

#[inline(never)]
fn broker_typed(mut req: RemotingCommand) -> SendMessageRequestHeader {
    let ext = std::mem::take(&mut req.ext_fields);
    SendMessageRequestHeader::take_for(req.code, ext).unwrap()
}

#[inline(never)]
fn broker_reply(req: &RemotingCommand) -> Vec<u8> {
    let header = SendMessageResponseHeader {
        msg_id: "7F00000100002A9F00000000001E8480".into(),
        queue_id: 2,
        queue_offset: 123_456,
        transaction_id: Some("7F00000100002A9F0000000000000001".into()),
        batch_uniq_id: None,
        recall_handle: None,
        msg_region: Some("DefaultRegion".into()),
        trace_on: Some("true".into()),
    };
    RemotingCommand::success(req)
        .with_ext_fields(header.into_ext())
        .try_encode_head(SerializeType::Json)
        .unwrap()
}

#[inline(never)]
fn tool_encode(cmd: &RemotingCommand) -> Vec<u8> {
    cmd.encode_head(SerializeType::Json)
}

#[inline(never)]
fn tool_decode_reply(frame: Bytes) -> RemotingCommand {
    RemotingCommand::decode(frame).unwrap()
}

#[test]
#[ignore]
fn send_header_work() {
    let n: usize = std::env::var("CG_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let req = tool_request();
    let frame = req.encode(SerializeType::Json).slice(4..);
    let reply = Bytes::from(broker_reply(&req)).slice(4..);
    for _ in 0..n {
        let r = broker_decode(black_box(frame.clone()));
        let h = broker_typed(r);
        black_box(&h);
        black_box(broker_reply(black_box(&req)));
        black_box(tool_encode(black_box(&req)));
        black_box(tool_decode_reply(black_box(reply.clone())));
    }
}
