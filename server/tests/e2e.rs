//! End to end, in process: standalone (nameserver + broker) on ephemeral ports, driven with the
//! net crate's client the way RocketMQ clients drive a broker.

use std::time::Duration;

use ferrocket_net::{Body, Client, ClientConfig, RemotingCommand};
use ferrocket_server::config::BrokerConfig;
use ferrocket_server::runtime::start_standalone;

const T: Duration = Duration::from_secs(5);

fn body_str(c: &RemotingCommand) -> String {
    match &c.body {
        Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

fn conf(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        store_path_root_dir: dir.to_string_lossy().into_owned(),
        broker_ip1: "127.0.0.1".into(),
        listen_port: 0,
        mapped_file_size_commit_log: 4 << 20,
        ..Default::default()
    }
}

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
