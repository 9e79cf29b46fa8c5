//! The README's broker.conf table lists every key the broker understands (it is generated from
//! the same table; this keeps them from drifting apart).

use ferrocket_server::config::BrokerConfig;

#[test]
fn readme_lists_every_broker_conf_key() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for key in BrokerConfig::KEYS {
        assert!(
            readme.contains(&format!("| `{key}` |")),
            "README.md lacks broker.conf key {key}"
        );
    }
}
