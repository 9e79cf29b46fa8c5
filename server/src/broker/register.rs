//! Registration with the nameservers: REGISTER_BROKER to every configured nameserver at start,
//! every `registerNameServerPeriod` (30 s) and at once when topics change; UNREGISTER_BROKER at
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use ferrocket_net::header::namesrv::{RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader};
use ferrocket_net::{Body, Client, RemotingCommand};

use super::Broker;
use crate::reply::{code, req};

/// The REGISTER_BROKER request for this broker's current topics.
pub fn register_request(b: &Broker) -> RemotingCommand {
    let conf = b.conf();
    let body = serde_json::json!({
        "filterServerList": [],
        "topicConfigSerializeWrapper": b.topics.serialize_wrapper(),
    })
    .to_string()
    .into_bytes();
    let ha_ip = if conf.broker_ip2.is_empty() {
        &conf.broker_ip1
    } else {
        &conf.broker_ip2
    };
    let header = RegisterBrokerRequestHeader {
        broker_name: conf.broker_name.clone(),
        broker_addr: b.store_host.to_string(),
        cluster_name: conf.broker_cluster_name.clone(),
        ha_server_addr: format!("{ha_ip}:{}", conf.ha_listen_port),
        broker_id: i64::try_from(conf.broker_id).unwrap_or(0),
        heartbeat_timeout_millis: None,
        enable_acting_master: Some(false),
        compressed: Some(false),
        body_crc32: Some((crc32fast::hash(&body) & 0x7FFF_FFFF) as i32),
        zone_name: None,
    };
    RemotingCommand::request_with(req::REGISTER_BROKER, &header).with_body(Body::Bytes(body.into()))
}

/// Registers with every nameserver concurrently; failures are logged (the loop retries).
pub async fn register_all(b: &Arc<Broker>, client: &Client) {
    let addrs = b.conf().namesrv_addrs();
    if addrs.is_empty() {
        tracing::warn!(
            "no nameserver configured (namesrvAddr / -n); clients cannot find this broker"
        );
        return;
    }
    let timeout = Duration::from_millis(b.conf().register_broker_timeout_mills.max(1000));
    let calls = addrs.into_iter().map(|addr| {
        let cmd = register_request(b);
        let client = client.clone();
        async move {
            match client.invoke(&addr, cmd, timeout).await {
                Ok(r) if r.code == code::SUCCESS => {
                    tracing::debug!(namesrv = %addr, "registered with nameserver");
                }
                Ok(r) => tracing::warn!(namesrv = %addr, code = r.code, remark = r.remark_str(), "nameserver refused registration"),
                Err(e) => tracing::warn!(namesrv = %addr, error = %e, "registering with nameserver failed"),
            }
        }
    });
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

/// Re-registers every period, or at once after `Broker::topics_changed`.
pub async fn register_loop(b: Arc<Broker>, client: Client) {
    /// Releases the waiters of `Broker::registered_since` however the loop ends.
    struct Stopped(Arc<Broker>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.registration_stopped();
        }
    }
    b.registration_started();
    let _stopped = Stopped(Arc::clone(&b));
    loop {
        let period = Duration::from_millis(b.conf().register_period_ms());
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = b.wait_topics_changed() => {}
        }
        if b.is_shutting_down() {
            return;
        }
        // What this round covers: every topic change made before it starts.
        let covered = b.registration_mark();
        register_all(&b, &client).await;
        b.registration_round_done(covered);
    }
}

/// UNREGISTER_BROKER to every nameserver (shutdown).
pub async fn unregister_all(b: &Arc<Broker>, client: &Client, timeout: Duration) {
    let conf = b.conf();
    for addr in conf.namesrv_addrs() {
        let header = UnregisterBrokerRequestHeader {
            broker_name: conf.broker_name.clone(),
            broker_addr: b.store_host.to_string(),
            cluster_name: conf.broker_cluster_name.clone(),
            broker_id: i64::try_from(conf.broker_id).unwrap_or(0),
        };
        let cmd = RemotingCommand::request_with(req::UNREGISTER_BROKER, &header);
        if let Err(e) = client.invoke(&addr, cmd, timeout).await {
            tracing::warn!(namesrv = %addr, error = %e, "unregistering from nameserver failed");
        }
    }
}
