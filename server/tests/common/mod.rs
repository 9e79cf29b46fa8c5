//! Harness helpers shared by the in-process integration tests (`mod common;` in each test file).
//! Each test crate uses only some of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrocket_net::{Body, RemotingCommand};
use ferrocket_server::config::BrokerConfig;

/// Timeout for every request a test makes.
pub const T: Duration = Duration::from_secs(5);

/// The response body as text (empty unless it is a plain byte body).
pub fn body_str(c: &RemotingCommand) -> String {
    match &c.body {
        Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// The response body as bytes, whatever its representation.
pub fn body_bytes(c: &RemotingCommand) -> Vec<u8> {
    match &c.body {
        Body::Empty => Vec::new(),
        Body::Bytes(b) => b.to_vec(),
        Body::Regions(rs) => rs.iter().flat_map(|r| r.as_bytes().to_vec()).collect(),
    }
}

/// `c` with `body` as its (text) body.
pub fn with_body(mut c: RemotingCommand, body: &str) -> RemotingCommand {
    c.body = Body::Bytes(body.as_bytes().to_vec().into());
    c
}

/// A SEND_MESSAGE (code 10) request for queue 0 of `topic`, auto-created from TBW102 with 4 queues.
pub fn send_request(topic: &str, body: &str, properties: &str) -> RemotingCommand {
    let req = RemotingCommand::request(10)
        .with_ext("producerGroup", "pg")
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", "4")
        .with_ext("queueId", "0")
        .with_ext("sysFlag", "0")
        .with_ext("bornTimestamp", "1700000000000")
        .with_ext("flag", "0")
        .with_ext("properties", properties);
    with_body(req, body)
}

/// A test broker whose store root is `dir` itself: see [`conf_at`].
pub fn conf(dir: &Path) -> BrokerConfig {
    conf_at(dir)
}

/// A test broker on 127.0.0.1 with an ephemeral port and small files, storing under `store`.
pub fn conf_at(store: &Path) -> BrokerConfig {
    BrokerConfig {
        store_path_root_dir: store.to_string_lossy().into_owned(),
        broker_ip1: "127.0.0.1".into(),
        listen_port: 0,
        mapped_file_size_commit_log: 4 << 20,
        max_hash_slot_num: 1000,
        max_index_num: 4000,
        // the test machine's disk may be fuller than the 90 % default allows
        disk_space_warning_level_ratio: 100,
        disk_space_clean_forcibly_ratio: 100,
        ..Default::default()
    }
}

/// Every path under `dir`, sorted (to prove a hostile request created nothing).
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// GET_ROUTEINFO_BY_TOPIC (105) for `topic` at the nameserver `namesrv`.
pub async fn query_route(
    client: &ferrocket_net::Client,
    namesrv: &str,
    topic: &str,
) -> RemotingCommand {
    client
        .invoke(
            namesrv,
            RemotingCommand::request(105).with_ext("topic", topic),
            T,
        )
        .await
        .unwrap()
}
