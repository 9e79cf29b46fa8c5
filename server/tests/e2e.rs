//! End to end, in process: standalone (nameserver + broker) on ephemeral ports, driven with the
//! net crate's client the way RocketMQ clients drive a broker.

mod common;

use std::time::Duration;

use ferrocket_net::{Body, Client, ClientConfig, RemotingCommand};
use ferrocket_server::runtime::start_standalone;
use ferrocket_store::decode_records;

use common::{body_bytes, body_str, conf, query_route, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_for_tbw102_after_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let nsaddr = ns.addr.to_string();

    let q = RemotingCommand::request(105).with_ext("topic", "TBW102");
    let r = client.invoke(&nsaddr, q, T).await.unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let route: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(
        route["brokerDatas"][0]["brokerAddrs"]["0"],
        broker.broker.store_host.to_string()
    );
    assert_eq!(route["queueDatas"][0]["perm"], 7);

    let q = RemotingCommand::request(105).with_ext("topic", "NoSuchTopic");
    assert_eq!(client.invoke(&nsaddr, q, T).await.unwrap().code, 17);

    let r = client
        .invoke(&nsaddr, RemotingCommand::request(106), T)
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(info["clusterAddrTable"]["DefaultCluster"][0], "broker-a");

    // unknown broker code
    let r = client
        .invoke(
            &broker.broker.store_host.to_string(),
            RemotingCommand::request(99_999),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 3);

    broker.stop().await;
    // the broker unregistered: the route is gone
    let q = RemotingCommand::request(105).with_ext("topic", "TBW102");
    assert_eq!(client.invoke(&nsaddr, q, T).await.unwrap().code, 17);
    ns.stop().await;
}

/// Sends are acknowledged once in the CommitLog; the ConsumeQueue follows a moment later.
async fn wait_max_offset(client: &Client, addr: &str, topic: &str, queue_id: i32, want: u64) {
    for _ in 0..500 {
        let q = RemotingCommand::request(30)
            .with_ext("topic", topic)
            .with_ext("queueId", queue_id.to_string());
        let r = client.invoke(addr, q, T).await.unwrap();
        if r.ext_fields["offset"] == want.to_string() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{topic}/{queue_id} never reached max offset {want}");
}

/// A SEND_MESSAGE as the C++ client builds it (numbers already strings after decoding).
fn send(topic: &str, queue_id: i32, tag: &str, body: &str) -> RemotingCommand {
    let props = format!("TAGS\u{1}{tag}\u{2}UNIQ_KEY\u{1}ABC{body}\u{2}WAIT\u{1}true\u{2}");
    RemotingCommand::request(10)
        .with_ext("producerGroup", "pg")
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", "4")
        .with_ext("queueId", queue_id.to_string())
        .with_ext("sysFlag", "0")
        .with_ext("bornTimestamp", "1700000000000")
        .with_ext("flag", "0")
        .with_ext("properties", props)
        .with_ext("reconsumeTimes", "0")
        .with_ext("unitMode", "0")
        .with_ext("batch", "0")
        .with_body(Body::Bytes(body.as_bytes().to_vec().into()))
}

fn pull(topic: &str, queue_id: i32, offset: u64, sys_flag: i32, sub: &str) -> RemotingCommand {
    RemotingCommand::request(11)
        .with_ext("consumerGroup", "cg")
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id.to_string())
        .with_ext("queueOffset", offset.to_string())
        .with_ext("maxMsgNums", "32")
        .with_ext("sysFlag", sys_flag.to_string())
        .with_ext("commitOffset", "0")
        .with_ext("suspendTimeoutMillis", "15000")
        .with_ext("subscription", sub)
        .with_ext("subVersion", "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_send_pull_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let nsaddr = ns.addr.to_string();
    let baddr = broker.broker.store_host.to_string();

    // 1. unknown topic: the producer falls back to TBW102's route and sends there
    let r = client
        .invoke(
            &nsaddr,
            RemotingCommand::request(105).with_ext("topic", "E2E"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 17);
    for (i, tag) in ["TagA", "TagB", "TagA"].iter().enumerate() {
        let r = client
            .invoke(&baddr, send("E2E", 1, tag, &format!("m{i}")), T)
            .await
            .unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
        assert_eq!(&r.ext_fields["queueId"], "1");
        assert_eq!(&r.ext_fields["queueOffset"], i.to_string());
        assert_eq!(r.ext_fields["msgId"].len(), 32);
        assert_eq!(&r.ext_fields["transactionId"], format!("ABCm{i}"));
        assert_eq!(&r.ext_fields["MSG_REGION"], "DefaultRegion");
        if i == 0 {
            // The auto-created topic was registered before the first send's reply (as Java's broker
            // does): a consumer that starts right after it finds the route at its one query.
            let r = query_route(&client, &nsaddr, "E2E").await;
            assert_eq!(r.code, 0, "route of the auto-created topic: {:?}", r.remark);
            let v: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
            assert_eq!(v["queueDatas"][0]["writeQueueNums"], 4);
        }
    }

    // 2. pull everything (once dispatched), then only TagA
    wait_max_offset(&client, &baddr, "E2E", 1, 3).await;
    let r = client
        .invoke(&baddr, pull("E2E", 1, 0, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(&r.ext_fields["nextBeginOffset"], "3");
    assert_eq!(&r.ext_fields["maxOffset"], "3");
    assert_eq!(&r.ext_fields["minOffset"], "0");
    assert_eq!(&r.ext_fields["suggestWhichBrokerId"], "0");
    let bytes = body_bytes(&r);
    let recs = decode_records(&bytes).unwrap();
    assert_eq!(
        recs.iter().map(|m| m.body).collect::<Vec<_>>(),
        vec![&b"m0"[..], b"m1", b"m2"]
    );
    let rec = &recs[0];
    assert_eq!(rec.store_host, broker.broker.store_host);
    assert_eq!(rec.born_host.ip().to_string(), "127.0.0.1");
    assert_eq!(rec.topic, "E2E");
    assert_eq!(rec.property("CLUSTER"), Some("DefaultCluster"));
    assert_eq!(rec.property("TAGS"), Some("TagA"));

    let r = client
        .invoke(&baddr, pull("E2E", 1, 0, 4, "TagA||TagC"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    let bytes = body_bytes(&r);
    let recs = decode_records(&bytes).unwrap();
    assert_eq!(
        recs.iter().map(|m| m.body).collect::<Vec<_>>(),
        vec![&b"m0"[..], b"m2"]
    );

    // caught up, not suspended: answered at once with 19
    let r = client
        .invoke(&baddr, pull("E2E", 1, 3, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 19);
    assert_eq!(&r.ext_fields["nextBeginOffset"], "3");
    // past the end: 21; Java corrects to the min offset while it is 0
    let r = client
        .invoke(&baddr, pull("E2E", 1, 9, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 21);
    assert_eq!(&r.ext_fields["nextBeginOffset"], "0");

    // 3. offsets: a new group on a young queue starts at 0; commit; query; max/min
    let q = |code: i32| {
        RemotingCommand::request(code)
            .with_ext("consumerGroup", "cg")
            .with_ext("topic", "E2E")
            .with_ext("queueId", "1")
    };
    let r = client.invoke(&baddr, q(14), T).await.unwrap();
    assert_eq!((r.code, &r.ext_fields["offset"]), (0, "0"));
    // an empty queue (and an unknown topic) also answers 0, as Java: a consumer starting there
    // must not skip a message acknowledged but not yet dispatched
    let r = client
        .invoke(&baddr, q(14).with_ext("queueId", "2"), T)
        .await
        .unwrap();
    assert_eq!((r.code, &r.ext_fields["offset"]), (0, "0"));
    let r = client
        .invoke(&baddr, q(14).with_ext("topic", "NoSuchT"), T)
        .await
        .unwrap();
    assert_eq!((r.code, &r.ext_fields["offset"]), (0, "0"));
    let r = client
        .invoke(
            &baddr,
            q(14)
                .with_ext("queueId", "2")
                .with_ext("setZeroIfNotFound", "false"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 22, "setZeroIfNotFound=false: QUERY_NOT_FOUND");
    let r = client
        .invoke(&baddr, q(15).with_ext("commitOffset", "2"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let r = client.invoke(&baddr, q(14), T).await.unwrap();
    assert_eq!(&r.ext_fields["offset"], "2");
    let r = client.invoke(&baddr, q(30), T).await.unwrap();
    assert_eq!(&r.ext_fields["offset"], "3");
    let r = client.invoke(&baddr, q(31), T).await.unwrap();
    assert_eq!(&r.ext_fields["offset"], "0");
    let r = client.invoke(&baddr, q(32), T).await.unwrap();
    assert!(r.ext_fields["timestamp"].parse::<i64>().unwrap() > 0);
    let r = client
        .invoke(&baddr, q(29).with_ext("timestamp", "0"), T)
        .await
        .unwrap();
    assert_eq!(&r.ext_fields["offset"], "0");

    // 4. commit through the pull's COMMIT_OFFSET flag
    let r = client
        .invoke(
            &baddr,
            pull("E2E", 1, 3, 1 | 4, "*").with_ext("commitOffset", "3"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 19);
    let r = client.invoke(&baddr, q(14), T).await.unwrap();
    assert_eq!(&r.ext_fields["offset"], "3");

    broker.stop().await;
    ns.stop().await;

    // 5. restart on the same store: data and committed offsets survive
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let baddr = broker.broker.store_host.to_string();
    let client = Client::new(ClientConfig::default());
    let r = client.invoke(&baddr, q(14), T).await.unwrap();
    assert_eq!(&r.ext_fields["offset"], "3");
    let r = client
        .invoke(&baddr, pull("E2E", 1, 0, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(decode_records(&body_bytes(&r)).unwrap().len(), 3);
    broker.stop().await;
    ns.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_send_and_heartbeat_registers() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let baddr = broker.broker.store_host.to_string();
    let r = client
        .invoke(&baddr, send("LP", 0, "TagA", "first"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    wait_max_offset(&client, &baddr, "LP", 0, 1).await;

    // heartbeat (C++ style: ordinals, subVersion as a string), then the consumer list
    let hb = r#"{"clientID":"1-127.0.0.1@a","consumerDataSet":[{"groupName":"cg","consumeFromWhere":0,"consumeType":1,"messageModel":1,"subscriptionDataSet":[{"subString":"TagA","subVersion":"5","topic":"LP"}]}],"producerDataSet":[{"groupName":"pg"}]}"#;
    let r = client
        .invoke(
            &baddr,
            RemotingCommand::request(34).with_body(Body::Bytes(hb.as_bytes().to_vec().into())),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let r = client
        .invoke(
            &baddr,
            RemotingCommand::request(38).with_ext("consumerGroup", "cg"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(body_str(&r), r#"{"consumerIdList":["1-127.0.0.1@a"]}"#);
    let r = client
        .invoke(
            &baddr,
            RemotingCommand::request(38).with_ext("consumerGroup", "nobody"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 1);
    // the heartbeat created the retry topic, and registered it before its reply
    assert!(broker.broker.topics.get("%RETRY%cg").is_some());
    let r = query_route(&client, &ns.addr.to_string(), "%RETRY%cg").await;
    assert_eq!(r.code, 0, "route of the retry topic: {:?}", r.remark);

    // a suspended pull at the end waits; a send wakes it with the new message
    let c2 = client.clone();
    let addr2 = baddr.clone();
    let held = tokio::spawn(async move {
        let start = std::time::Instant::now();
        // no SUBSCRIPTION flag: the heartbeat's subscription (TagA) filters
        let r = c2
            .invoke(&addr2, pull("LP", 0, 1, 2, ""), Duration::from_secs(30))
            .await
            .unwrap();
        (r, start.elapsed())
    });
    while broker.broker.pull_hold.parked() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = client
        .invoke(&baddr, send("LP", 0, "TagA", "second"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    let (r, waited) = held.await.unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert!(
        waited < Duration::from_secs(10),
        "woken by the send, not the timeout: {waited:?}"
    );
    let bytes = body_bytes(&r);
    let recs = decode_records(&bytes).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].body, b"second");

    // a subscription newer than the heartbeat's is refused
    let r = client
        .invoke(
            &baddr,
            pull("LP", 0, 0, 0, "").with_ext("subVersion", "9"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 25);

    // unregister: the group empties
    let r = client
        .invoke(
            &baddr,
            RemotingCommand::request(35)
                .with_ext("clientID", "1-127.0.0.1@a")
                .with_ext("consumerGroup", "cg")
                .with_ext("producerGroup", ""),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    assert!(broker.broker.clients.consumer_ids("cg").is_empty());
    broker.stop().await;
    ns.stop().await;
}

fn send_v2(code: i32, topic: &str, queue_id: i32, body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(code)
        .with_ext("a", "pg")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", "4")
        .with_ext("e", queue_id.to_string())
        .with_ext("f", "0")
        .with_ext("g", "1700000000000")
        .with_ext("h", "0")
        .with_ext("i", "")
        .with_body(Body::Bytes(body.into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_send_and_refusals() {
    use ferrocket_server::broker::message::{encode_batch, BatchItem};
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let baddr = broker.broker.store_host.to_string();

    let items: Vec<BatchItem> = (0..3)
        .map(|i| BatchItem {
            flag: i,
            body: format!("b{i}").into_bytes(),
            properties: format!("UNIQ_KEY\u{1}U{i}\u{2}TAGS\u{1}T{i}\u{2}"),
        })
        .collect();
    let r = client
        .invoke(&baddr, send_v2(320, "Batch", 2, encode_batch(&items)), T)
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(r.ext_fields["msgId"].split(',').count(), 3);
    assert_eq!(&r.ext_fields["queueOffset"], "0");
    wait_max_offset(&client, &baddr, "Batch", 2, 3).await;
    let r = client
        .invoke(&baddr, pull("Batch", 2, 0, 4, "T1 || T2"), T)
        .await
        .unwrap();
    let bytes = body_bytes(&r);
    let recs = decode_records(&bytes).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].body, recs[0].flag, recs[0].queue_offset),
        (&b"b1"[..], 1, 1)
    );
    assert_eq!(recs[1].property("UNIQ_KEY"), Some("U2"));
    // a broken batch body is MESSAGE_ILLEGAL, nothing stored
    let r = client
        .invoke(&baddr, send_v2(320, "Batch", 2, vec![0, 0, 0, 9, 1]), T)
        .await
        .unwrap();
    assert_eq!(r.code, 13);

    let single = |topic: &str, q: i32| send_v2(310, topic, q, b"x".to_vec());
    // system topics cannot be sent to
    let r = client
        .invoke(&baddr, single("SCHEDULE_TOPIC_XXXX", 0), T)
        .await
        .unwrap();
    assert_eq!(r.code, 16, "{:?}", r.remark);
    // queue id beyond the topic's queues
    let r = client.invoke(&baddr, single("Batch", 99), T).await.unwrap();
    assert_eq!(r.code, 29, "{:?}", r.remark);
    // illegal topic name
    let r = client
        .invoke(&baddr, single("bad/name", 0), T)
        .await
        .unwrap();
    assert_eq!(r.code, 29, "{:?}", r.remark);
    // unknown topic whose template does not exist
    let r = client
        .invoke(&baddr, single("Fresh", 0).with_ext("c", "NoTemplate"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 17, "{:?}", r.remark);
    // a missing required field is named
    let mut m = single("Batch", 0);
    m.ext_fields.remove("g");
    let r = client.invoke(&baddr, m, T).await.unwrap();
    assert_eq!(r.code, 1);
    assert!(r.remark.unwrap_or_default().contains("<g>"));
    // pulls: unknown topic, queue out of range, SQL92
    let r = client
        .invoke(&baddr, pull("Nope", 0, 0, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 17);
    let r = client
        .invoke(&baddr, pull("Batch", 7, 0, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 29);
    let r = client
        .invoke(
            &baddr,
            pull("Batch", 0, 0, 4, "a > 1").with_ext("expressionType", "SQL92"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 1);
    // a queue that exists but is empty: 19 at offset 0
    let r = client
        .invoke(&baddr, pull("Batch", 0, 0, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(r.code, 19);
    broker.stop().await;
    ns.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_change_notifies_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let baddr = broker.broker.store_host.to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RemotingCommand>();
    let first = Client::new(ClientConfig {
        push_handler: Some(std::sync::Arc::new(
            move |_addr: &str, cmd: RemotingCommand| {
                let _ = tx.send(cmd);
            },
        )),
        ..ClientConfig::default()
    });
    let second = Client::new(ClientConfig::default());
    let hb = |id: &str| {
        let body = format!(
            r#"{{"clientID":"{id}","consumerDataSet":[{{"groupName":"ng","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[{{"topic":"NT","subString":"*","subVersion":0}}]}}]}}"#
        );
        RemotingCommand::request(34).with_body(Body::Bytes(body.into_bytes().into()))
    };
    assert_eq!(first.invoke(&baddr, hb("c1"), T).await.unwrap().code, 0);
    let notify = rx.recv().await.unwrap();
    assert_eq!(notify.code, 40, "a new member is announced, even to itself");
    assert_eq!(second.invoke(&baddr, hb("c2"), T).await.unwrap().code, 0);
    let notify = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(notify.code, 40);
    assert_eq!(&notify.ext_fields["consumerGroup"], "ng");
    assert_eq!(broker.broker.clients.consumer_ids("ng"), vec!["c1", "c2"]);
    // the second client disconnects: the first is told again
    second.close_all().await;
    let notify = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(notify.code, 40);
    assert_eq!(broker.broker.clients.consumer_ids("ng"), vec!["c1"]);
    broker.stop().await;
    ns.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_broker_registers_with_every_nameserver() {
    use ferrocket_server::runtime::{start_broker, start_namesrv};
    let dir = tempfile::tempdir().unwrap();
    let ns1 = start_namesrv("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let ns2 = start_namesrv("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = conf(dir.path());
    c.namesrv_addr = format!("{};{}", ns1.addr, ns2.addr);
    c.broker_name = "broker-x".into();
    let broker = start_broker(c).await.unwrap();
    let client = Client::new(ClientConfig::default());
    for ns in [&ns1, &ns2] {
        let r = client
            .invoke(
                &ns.addr.to_string(),
                RemotingCommand::request(105).with_ext("topic", "TBW102"),
                T,
            )
            .await
            .unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
        let v: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
        assert_eq!(v["brokerDatas"][0]["brokerName"], "broker-x");
        // the route reflects the broker's TBW102 (perm 7, defaultTopicQueueNums queues)
        assert_eq!(v["queueDatas"][0]["writeQueueNums"], 4);
        let r = client
            .invoke(&ns.addr.to_string(), RemotingCommand::request(206), T)
            .await
            .unwrap();
        assert!(body_str(&r).contains("TBW102"));
    }
    broker.stop().await;
    for ns in [&ns1, &ns2] {
        let r = client
            .invoke(
                &ns.addr.to_string(),
                RemotingCommand::request(105).with_ext("topic", "TBW102"),
                T,
            )
            .await
            .unwrap();
        assert_eq!(r.code, 17, "unregistered at shutdown");
    }
    ns1.stop().await;
    ns2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_flush_sends_are_durable_before_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.flush_disk_type = ferrocket_store::FlushDiskType::Sync;
    let (ns, broker) = start_standalone(c, 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let baddr = broker.broker.store_host.to_string();
    // concurrent sync sends share group commits; every ack means "flushed"
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (client, baddr) = (client.clone(), baddr.clone());
        tasks.push(tokio::spawn(async move {
            client
                .invoke(&baddr, send("Sync", 0, "T", &format!("s{i}")), T)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    assert!(broker.broker.store.flushed_offset() >= broker.broker.store.commit_log_max_offset());
    wait_max_offset(&client, &baddr, "Sync", 0, 16).await;
    let r = client
        .invoke(&baddr, pull("Sync", 0, 0, 4, "*"), T)
        .await
        .unwrap();
    assert_eq!(decode_records(&body_bytes(&r)).unwrap().len(), 16);
    broker.stop().await;
    ns.stop().await;
}

/// A fresh store's first CommitLog segment is made (zero-filled, renamed into place) before the
/// broker starts serving, so no first send waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_store_has_its_first_segment_before_the_broker_serves() {
    const SEG: u64 = 128 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.flush_disk_type = ferrocket_store::FlushDiskType::Sync;
    c.mapped_file_size_commit_log = SEG;
    let (ns, broker) = start_standalone(c, 0).await.unwrap();
    assert!(
        broker.broker.store.wait_preallocated(Duration::ZERO),
        "a segment still being made after the start"
    );
    let first = dir.path().join("commitlog").join(format!("{:020}", 0));
    assert_eq!(std::fs::metadata(&first).unwrap().len(), SEG);
    broker.stop().await;
    ns.stop().await;
}
