//! End to end, in process: redelivery through CONSUMER_SEND_MSG_BACK (retry topic after a delay
//! level, DLQ after maxReconsumeTimes or delayLevel < 0), delayed messages, QUERY_MESSAGE and
//! VIEW_MESSAGE_BY_ID, driven over the wire with the net crate's client. Delay levels are scaled
//! down with `messageDelayLevel` the way an operator would in broker.conf.

mod common;

use std::time::{Duration, Instant};

use ferrocket_net::{Body, Client, ClientConfig, RemotingCommand};
use ferrocket_server::config::BrokerConfig;
use ferrocket_server::runtime::start_standalone;
use ferrocket_store::record::{decode_records, RecordView};

use common::{body_bytes, send_request, T};

fn conf(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        // Level n waits n seconds for the first three levels, then 1 s: retries come quickly.
        message_delay_level: "1s 2s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s".into(),
        ..common::conf(dir)
    }
}

fn props(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
        .collect()
}

struct Sent {
    /// CommitLog offset, from the offset msgId.
    phy: u64,
    msg_id: String,
}

async fn send(client: &Client, addr: &str, topic: &str, body: &str, properties: &str) -> Sent {
    let req = send_request(topic, body, properties)
        .with_ext("reconsumeTimes", "0")
        .with_ext("unitMode", "false")
        .with_ext("batch", "false");
    let r = client.invoke(addr, req, T).await.unwrap();
    assert_eq!(r.code, 0, "send: {:?}", r.remark);
    let msg_id = r.ext_fields.get("msgId").unwrap().to_owned();
    assert_eq!(msg_id.len(), 32, "{msg_id}");
    let phy = u64::from_str_radix(&msg_id[16..], 16).unwrap();
    Sent { phy, msg_id }
}

async fn send_back(
    client: &Client,
    addr: &str,
    phy: u64,
    group: &str,
    level: i32,
) -> RemotingCommand {
    let req = RemotingCommand::request(36)
        .with_ext("offset", phy.to_string())
        .with_ext("group", group)
        .with_ext("delayLevel", level.to_string());
    client.invoke(addr, req, T).await.unwrap()
}

/// Pulls (topic, queue 0) from `offset` without suspending; returns the raw records body.
async fn pull(
    client: &Client,
    addr: &str,
    group: &str,
    topic: &str,
    offset: u64,
) -> (i32, Vec<u8>) {
    let req = RemotingCommand::request(11)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", "0")
        .with_ext("queueOffset", offset.to_string())
        .with_ext("maxMsgNums", "32")
        .with_ext("sysFlag", "4")
        .with_ext("commitOffset", "0")
        .with_ext("suspendTimeoutMillis", "0")
        .with_ext("subscription", "*")
        .with_ext("subVersion", "0");
    let r = client.invoke(addr, req, T).await.unwrap();
    (r.code, body_bytes(&r))
}

/// Pulls until `n` records are there or `within` passes.
async fn pull_until(
    client: &Client,
    addr: &str,
    group: &str,
    topic: &str,
    n: usize,
    within: Duration,
) -> Vec<u8> {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = pull(client, addr, group, topic, 0).await;
        if code == 0 && decode_records(&body).unwrap().len() >= n {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {n} records not there in time (code {code})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn one(body: &[u8]) -> RecordView<'_> {
    let v = decode_records(body).unwrap();
    assert_eq!(v.len(), 1);
    v.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_back_is_redelivered_through_the_retry_topic_then_the_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let addr = broker.addr.to_string();

    // A group that gives up after one retry.
    let mut group = RemotingCommand::request(200);
    group.body = Body::Bytes(
        br#"{"groupName":"cg","retryMaxTimes":1,"retryQueueNums":1}"#
            .to_vec()
            .into(),
    );
    assert_eq!(client.invoke(&addr, group, T).await.unwrap().code, 0);

    let p = props(&[("TAGS", "TagA"), ("KEYS", "order-7"), ("UNIQ_KEY", "UQ-7")]);
    let sent = send(&client, &addr, "RetryTopic", "payload-7", &p).await;

    // Consumption failed: back to the broker with delayLevel 0 → level 3 + 0 = 3 (1 s here).
    let started = Instant::now();
    let r = send_back(&client, &addr, sent.phy, "cg", 0).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let (code, _) = pull(&client, &addr, "cg", "%RETRY%cg", 0).await;
    assert_ne!(code, 0, "the retry must wait for its delay level");
    let body = pull_until(
        &client,
        &addr,
        "cg",
        "%RETRY%cg",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let retry = one(&body);
    assert_eq!(retry.body, b"payload-7");
    assert_eq!(retry.reconsume_times, 1);
    assert_eq!(retry.property("RETRY_TOPIC"), Some("RetryTopic"));
    assert_eq!(
        retry.property("ORIGIN_MESSAGE_ID"),
        Some(sent.msg_id.as_str())
    );
    assert_eq!(retry.property("UNIQ_KEY"), Some("UQ-7"));
    assert_eq!(retry.property("TAGS"), Some("TagA"));
    assert_eq!(retry.property("DELAY"), None);
    let retry_phy = u64::try_from(retry.phy_offset).unwrap();

    // It failed again: reconsumeTimes 1 ≥ retryMaxTimes 1 → the DLQ, at once.
    let r = send_back(&client, &addr, retry_phy, "cg", 0).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    // The DLQ is write-only (perm 2) as in Java: find the message by key instead of pulling.
    let q = RemotingCommand::request(12)
        .with_ext("topic", "%DLQ%cg")
        .with_ext("key", "order-7")
        .with_ext("maxNum", "32")
        .with_ext("beginTimestamp", "0")
        .with_ext("endTimestamp", i64::MAX.to_string());
    let deadline = Instant::now() + Duration::from_secs(5);
    let dlq_body = loop {
        let r = client.invoke(&addr, q.clone(), T).await.unwrap();
        if r.code == 0 {
            break body_bytes(&r);
        }
        assert!(Instant::now() < deadline, "DLQ copy not found");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dlq = one(&dlq_body);
    assert_eq!(dlq.topic, "%DLQ%cg");
    assert_eq!(dlq.body, b"payload-7");
    assert_eq!(dlq.reconsume_times, 2);
    assert_eq!(dlq.property("RETRY_TOPIC"), Some("RetryTopic"));
    assert_eq!(
        dlq.property("ORIGIN_MESSAGE_ID"),
        Some(sent.msg_id.as_str())
    );
    let (code, _) = pull(&client, &addr, "cg", "%DLQ%cg", 0).await;
    assert_eq!(code, 16, "DLQ is not readable");

    // delayLevel < 0 sends a fresh failure straight to the DLQ.
    let p = props(&[("KEYS", "poison-1")]);
    let poison = send(&client, &addr, "RetryTopic", "poison", &p).await;
    let r = send_back(&client, &addr, poison.phy, "cg", -1).await;
    assert_eq!(r.code, 0);
    let q = q.with_ext("key", "poison-1");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = client.invoke(&addr, q.clone(), T).await.unwrap();
        if r.code == 0 {
            assert_eq!(one(&body_bytes(&r)).body, b"poison");
            break;
        }
        assert!(Instant::now() < deadline, "poison not in the DLQ");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refusals: an offset where no record starts.
    let r = send_back(&client, &addr, sent.phy + 1, "cg", 0).await;
    assert_eq!(r.code, 1);
    broker.stop().await;
    ns.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_message_arrives_after_its_level() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let addr = broker.addr.to_string();
    // Level 2 = 2 s with this broker's messageDelayLevel.
    let p = props(&[("TAGS", "Later"), ("DELAY", "2")]);
    let started = Instant::now();
    send(&client, &addr, "DelayedTopic", "in two seconds", &p).await;
    let (code, _) = pull(&client, &addr, "dg", "DelayedTopic", 0).await;
    assert_ne!(code, 0, "delivered too early");
    let body = pull_until(
        &client,
        &addr,
        "dg",
        "DelayedTopic",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let m = one(&body);
    assert_eq!(m.body, b"in two seconds");
    assert_eq!(m.topic, "DelayedTopic");
    assert_eq!(m.property("TAGS"), Some("Later"));
    assert_eq!(m.property("DELAY"), None);
    assert_eq!(m.property("REAL_TOPIC"), Some("DelayedTopic"));
    // Progress is persisted at shutdown.
    broker.stop().await;
    ns.stop().await;
    let delay = std::fs::read_to_string(dir.path().join("config/delayOffset.json")).unwrap();
    assert!(delay.contains("2:1"), "{delay}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_key_and_view_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let addr = broker.addr.to_string();
    let a = send(
        &client,
        &addr,
        "QueryTopic",
        "first",
        &props(&[("KEYS", "k1 shared"), ("UNIQ_KEY", "U1")]),
    )
    .await;
    send(
        &client,
        &addr,
        "QueryTopic",
        "second",
        &props(&[("KEYS", "k2 shared"), ("UNIQ_KEY", "U2")]),
    )
    .await;
    send(
        &client,
        &addr,
        "OtherTopic",
        "elsewhere",
        &props(&[("KEYS", "shared")]),
    )
    .await;

    let query = |key: &str, unique: bool| {
        let mut q = RemotingCommand::request(12)
            .with_ext("topic", "QueryTopic")
            .with_ext("key", key)
            .with_ext("maxNum", "32")
            .with_ext("beginTimestamp", "0")
            .with_ext("endTimestamp", i64::MAX.to_string());
        if unique {
            q = q.with_ext("_UNIQUE_KEY_QUERY", "true");
        }
        q
    };
    // The index is built by the dispatcher shortly after the send.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shared = loop {
        let r = client
            .invoke(&addr, query("shared", false), T)
            .await
            .unwrap();
        let body = body_bytes(&r);
        if r.code == 0 && decode_records(&body).unwrap().len() == 2 {
            assert!(r.ext_fields.contains_key("indexLastUpdatePhyoffset"));
            break body;
        }
        assert!(Instant::now() < deadline, "query by key: {:?}", r.remark);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut bodies: Vec<Vec<u8>> = decode_records(&shared)
        .unwrap()
        .iter()
        .map(|r| r.body.to_vec())
        .collect();
    bodies.sort();
    assert_eq!(bodies, vec![b"first".to_vec(), b"second".to_vec()]);
    let r = client.invoke(&addr, query("U2", true), T).await.unwrap();
    assert_eq!(one(&body_bytes(&r)).body, b"second");
    let r = client
        .invoke(&addr, query("nothing-here", false), T)
        .await
        .unwrap();
    assert_eq!(r.code, 22);

    // VIEW_MESSAGE_BY_ID with the commit log offset from the offset msgId.
    let view = RemotingCommand::request(33).with_ext("offset", a.phy.to_string());
    let r = client.invoke(&addr, view, T).await.unwrap();
    assert_eq!(r.code, 0);
    let bytes = body_bytes(&r);
    let m = one(&bytes);
    assert_eq!(m.body, b"first");
    assert_eq!(m.property("UNIQ_KEY"), Some("U1"));
    let view = RemotingCommand::request(33).with_ext("offset", (a.phy + 3).to_string());
    let r = client.invoke(&addr, view, T).await.unwrap();
    assert_eq!(r.code, 1);
    assert!(r
        .remark
        .unwrap_or_default()
        .starts_with("can not find message by the offset"));
    broker.stop().await;
    ns.stop().await;
}
