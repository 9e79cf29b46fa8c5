//! End to end, in process: corrupt config/*.json files never stop the broker (issue 6, "torn and
//! corrupt files"). With the broker stopped, each file is emptied, truncated or filled with
//! garbage; the broker restarts, falls back to the `.bak` copy, keeps serving, and recreates topic
//! configs for topics that have messages on disk.

mod common;

use ferrocket_net::{Client, ClientConfig, RemotingCommand};
use ferrocket_server::runtime::start_standalone;

use common::{conf, send_request, T};

async fn send(client: &Client, addr: &str, topic: &str, body: &str) {
    let req = send_request(topic, body, "");
    let r = client.invoke(addr, req, T).await.unwrap();
    assert_eq!(r.code, 0, "send: {:?}", r.remark);
}

async fn query_offset(client: &Client, addr: &str, group: &str, topic: &str) -> RemotingCommand {
    let req = RemotingCommand::request(14)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", "0");
    client.invoke(addr, req, T).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_config_files_fall_back_and_never_stop_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientConfig::default());
    {
        let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
        let addr = broker.addr.to_string();
        send(&client, &addr, "FirstTopic", "one").await;
        send(&client, &addr, "SecondTopic", "two").await;
        for offset in ["1", "1"] {
            let req = RemotingCommand::request(15)
                .with_ext("consumerGroup", "cg")
                .with_ext("topic", "FirstTopic")
                .with_ext("queueId", "0")
                .with_ext("commitOffset", offset);
            assert_eq!(client.invoke(&addr, req, T).await.unwrap().code, 0);
        }
        broker.stop().await;
        ns.stop().await;
    }
    let config = dir.path().join("config");
    for damage in [
        b"".as_slice(),
        b"{\"dataVersion\":{\"counter\":3,".as_slice(),
        b"\x00\x00\xff\xfegarbage".as_slice(),
    ] {
        for name in [
            "topics.json",
            "consumerOffset.json",
            "subscriptionGroup.json",
            "delayOffset.json",
        ] {
            std::fs::write(config.join(name), damage).unwrap();
        }
        let (ns, broker) = start_standalone(conf(dir.path()), 0).await.unwrap();
        let addr = broker.addr.to_string();
        // Both topics are known again: from topics.json.bak, or rebuilt from the queues on disk.
        assert!(
            broker.broker.topics.get("FirstTopic").is_some(),
            "{damage:?}"
        );
        assert!(
            broker.broker.topics.get("SecondTopic").is_some(),
            "{damage:?}"
        );
        // The committed offset came back from consumerOffset.json.bak.
        let r = query_offset(&client, &addr, "cg", "FirstTopic").await;
        assert_eq!(r.code, 0, "{damage:?}: {:?}", r.remark);
        assert_eq!(r.ext_fields.get("offset"), Some("1"));
        // And it still serves: a new send works.
        send(&client, &addr, "FirstTopic", "after repair").await;
        broker.stop().await;
        ns.stop().await;
        // The damaged file was kept aside for inspection, and a good file is back in place.
        assert!(config.join("topics.json.corrupt").exists());
        let text = std::fs::read_to_string(config.join("topics.json")).unwrap();
        assert!(text.contains("\"FirstTopic\""));
    }
}
