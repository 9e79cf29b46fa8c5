//! End to end, in process: queue locks and the admin requests (config, topics, groups) over the
//! wire, against standalone nameserver + broker on ephemeral ports, with the net crate's client.
//! The refusal tests are the "no admin path to code or files" proof of issue 6 (CVE-2023-33246,
//! CVE-2023-37582 classes).

mod common;

use ferrocket_net::{Client, ClientConfig, RemotingCommand};
use ferrocket_server::runtime::start_standalone;

use common::{body_str, conf_at, query_route, send_request, tree, with_body, T};

/// This file's brokers store under `dir/store`, so `dir` itself also holds paths outside the store.
fn conf(dir: &std::path::Path) -> ferrocket_server::config::BrokerConfig {
    conf_at(&dir.join("store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_config_updates_are_refused_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let addr = broker.addr.to_string();
    let outside = dir.path().join("outside");
    let before_conf = client
        .invoke(&addr, RemotingCommand::request(26), T)
        .await
        .unwrap();
    assert_eq!(before_conf.code, 0);
    let before_text = body_str(&before_conf);
    let cases = [
        ("storePathRootDir", outside.display().to_string()),
        ("storePathCommitLog", outside.display().to_string()),
        (
            "brokerConfigPath",
            outside.join("broker.conf").display().to_string(),
        ),
        (
            "rocketmqHome",
            "-c $@|sh . echo touch /tmp/ferrocket-pwned;".to_string(),
        ),
        ("filterServerNums", "1".to_string()),
        ("configBlackList", "".to_string()),
        ("namesrvAddr", "203.0.113.1:9876".to_string()),
        (
            "kvConfigPath",
            outside.join("kv.json").display().to_string(),
        ),
        ("configStorePath", outside.join("x").display().to_string()),
        ("listenPort", "1".to_string()),
        ("brokerIP1", "203.0.113.9".to_string()),
        ("messageDelayLevel", "1s".to_string()),
    ];
    let before_tree = tree(dir.path());
    for (key, value) in &cases {
        // Alone, and hidden behind an allowed key: refused either way, naming the key.
        for body in [
            format!("{key}={value}\n"),
            format!("traceOn=false\n{key}={value}\n"),
        ] {
            let req = with_body(RemotingCommand::request(25), &body);
            let r = client.invoke(&addr, req, T).await.unwrap();
            assert_eq!(r.code, 16, "{key}: {:?}", r.remark);
            assert!(
                r.remark.clone().unwrap_or_default().contains(key),
                "{key}: {:?}",
                r.remark
            );
        }
    }
    // Unknown keys and values that do not parse are INVALID_PARAMETER.
    for body in [
        "brokerPermission=abc\n",
        "defaultTopicQueueNums=0\n",
        "brokerPermission=6;id\n",
    ] {
        let r = client
            .invoke(&addr, with_body(RemotingCommand::request(25), body), T)
            .await
            .unwrap();
        assert_eq!(r.code, 29, "{body}: {:?}", r.remark);
    }
    // Nothing changed: same config, no new files anywhere under the test dir (the store may have
    // rewritten its own files, which already existed).
    let after = client
        .invoke(&addr, RemotingCommand::request(26), T)
        .await
        .unwrap();
    assert_eq!(body_str(&after), before_text);
    assert!(!outside.exists());
    assert!(!std::path::Path::new("/tmp/ferrocket-pwned").exists());
    // Nothing appeared outside the store directory (the store itself may create its own files
    // in the background, e.g. the next segment), and nothing named after a hostile value inside.
    let store_dir = dir.path().join("store");
    let outside_store = |t: Vec<std::path::PathBuf>| -> Vec<std::path::PathBuf> {
        t.into_iter()
            .filter(|p| !p.starts_with(&store_dir))
            .collect()
    };
    assert_eq!(
        outside_store(tree(dir.path())),
        outside_store(before_tree.clone())
    );
    for p in tree(dir.path()) {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        assert!(
            !["broker.conf", "kv.json", "x", "outside"].contains(&name.as_str()),
            "{}",
            p.display()
        );
    }
    // An allowed runtime change is applied and visible.
    let r = client
        .invoke(
            &addr,
            with_body(RemotingCommand::request(25), "traceOn=false\n"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let after = client
        .invoke(&addr, RemotingCommand::request(26), T)
        .await
        .unwrap();
    assert!(body_str(&after).contains("traceOn=false\n"));
    broker.stop().await;
    ns.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_unlock_batch_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let addr = broker.addr.to_string();
    let body = |client_id: &str| {
        format!(
            r#"{{"consumerGroup":"orderly_group","clientId":"{client_id}","mqSet":[{{"topic":"OrderTopic","brokerName":"broker-a","queueId":0}},{{"topic":"OrderTopic","brokerName":"broker-a","queueId":1}}]}}"#
        )
    };
    let lock = |who: &str| with_body(RemotingCommand::request(41), &body(who));
    let r = client.invoke(&addr, lock("c1"), T).await.unwrap();
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(v["lockOKMQSet"].as_array().unwrap().len(), 2);
    assert_eq!(v["lockOKMQSet"][0]["topic"], "OrderTopic");
    // Another client is refused while c1 holds the locks.
    let r = client.invoke(&addr, lock("c2"), T).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(v["lockOKMQSet"], serde_json::json!([]));
    // The holder renews.
    let r = client.invoke(&addr, lock("c1"), T).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(v["lockOKMQSet"].as_array().unwrap().len(), 2);
    // Unlock by the holder frees them for c2.
    let r = client
        .invoke(
            &addr,
            with_body(RemotingCommand::request(42), &body("c1")),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    let r = client.invoke(&addr, lock("c2"), T).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(v["lockOKMQSet"].as_array().unwrap().len(), 2);
    // Garbage bodies: an error reply, and the broker stays up.
    for bad in [
        "",
        "{",
        "[1,2",
        "{\"consumerGroup\":\"../x\",\"clientId\":\"c\"}",
    ] {
        let r = client
            .invoke(&addr, with_body(RemotingCommand::request(41), bad), T)
            .await
            .unwrap();
        assert_eq!(r.code, 1, "{bad:?}");
    }
    let r = client.invoke(&addr, lock("c2"), T).await.unwrap();
    assert_eq!(r.code, 0);
    broker.stop().await;
    ns.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_topic_and_group_changes_reach_the_nameserver_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
    let client = Client::new(ClientConfig::default());
    let addr = broker.addr.to_string();
    let nsaddr = ns.addr.to_string();
    let create = RemotingCommand::request(17)
        .with_ext("topic", "AdminMade")
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", "2")
        .with_ext("writeQueueNums", "2")
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("order", "false");
    let r = client.invoke(&addr, create, T).await.unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    // The broker re-registered before replying: the route is at the nameserver already.
    let r = query_route(&client, &nsaddr, "AdminMade").await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let route: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(route["queueDatas"][0]["writeQueueNums"], 2);
    let topics_json = std::fs::read_to_string(dir.path().join("store/config/topics.json")).unwrap();
    assert!(topics_json.contains("\"AdminMade\""));

    // Hostile topic names are refused and create nothing.
    for name in ["../../escape", "a/b", "x\u{0}y"] {
        let create = RemotingCommand::request(17)
            .with_ext("topic", name)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", "1")
            .with_ext("writeQueueNums", "1")
            .with_ext("perm", "6");
        let r = client.invoke(&addr, create, T).await.unwrap();
        assert_eq!(r.code, 29, "{name:?}");
    }
    assert!(!dir.path().join("escape").exists());

    let group = with_body(
        RemotingCommand::request(200),
        r#"{"groupName":"admin_group","retryMaxTimes":5,"retryQueueNums":1}"#,
    );
    let r = client.invoke(&addr, group, T).await.unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let r = client
        .invoke(
            &addr,
            RemotingCommand::request(352).with_ext("group", "admin_group"),
            T,
        )
        .await
        .unwrap();
    let g: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert_eq!(g["retryMaxTimes"], 5);

    for i in 0..2 {
        let r = client
            .invoke(&addr, send_request("AdminMade", &format!("old{i}"), ""), T)
            .await
            .unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
        assert_eq!(&r.ext_fields["queueOffset"], &i.to_string());
    }
    let max_offset = || {
        RemotingCommand::request(30)
            .with_ext("topic", "AdminMade")
            .with_ext("queueId", "0")
    };
    let r = client.invoke(&addr, max_offset(), T).await.unwrap();
    assert_eq!(&r.ext_fields["offset"], "2");
    let r = client
        .invoke(
            &addr,
            RemotingCommand::request(215).with_ext("topic", "AdminMade"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    // Its queues went with it (RocketMQ's deleteTopics)...
    assert!(!dir.path().join("store/consumequeue/AdminMade").exists());
    let r = client.invoke(&addr, max_offset(), T).await.unwrap();
    assert_eq!(&r.ext_fields["offset"], "0");
    let r = client
        .invoke(
            &addr,
            RemotingCommand::request(351).with_ext("topic", "AdminMade"),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 17);
    let r = client
        .invoke(&addr, RemotingCommand::request(21), T)
        .await
        .unwrap();
    let all: serde_json::Value = serde_json::from_str(&body_str(&r)).unwrap();
    assert!(all["topicConfigTable"]["TBW102"].is_object());
    assert!(all["topicConfigTable"]["AdminMade"].is_null());
    // ...so a send that creates it again starts it at offset 0.
    let r = client
        .invoke(&addr, send_request("AdminMade", "new0", ""), T)
        .await
        .unwrap();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(&r.ext_fields["queueOffset"], "0");
    broker.stop().await;
    ns.stop().await;
}
