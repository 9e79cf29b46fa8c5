//! Nameserver headers: broker registration, routes, KV config, permissions.

use crate::header::ext_header;

ext_header! {
    /// REGISTER_BROKER (103).
    pub struct RegisterBrokerRequestHeader {
        req broker_name: String = "brokerName",
        /// brokerIP1:listenPort
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        /// brokerIP2:haListenPort
        req ha_server_addr: String = "haServerAddr",
        /// 0 = master.
        req broker_id: i64 = "brokerId",
        opt heartbeat_timeout_millis: i64 = "heartbeatTimeoutMillis",
        opt enable_acting_master: bool = "enableActingMaster",
        opt compressed: bool = "compressed",
        /// CRC32 of the body; 0 or absent = unchecked.
        opt body_crc32: i32 = "bodyCrc32",
        opt zone_name: String = "__ZONE_NAME",
    }
}

ext_header! {
    /// REGISTER_BROKER answer.
    pub struct RegisterBrokerResponseHeader {
        opt ha_server_addr: String = "haServerAddr",
        opt master_addr: String = "masterAddr",
    }
}

ext_header! {
    /// UNREGISTER_BROKER (104).
    pub struct UnregisterBrokerRequestHeader {
        req broker_name: String = "brokerName",
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        req broker_id: i64 = "brokerId",
    }
}

ext_header! {
    /// QUERY_DATA_VERSION (322); the body is the broker's DataVersion JSON.
    pub struct QueryDataVersionRequestHeader {
        req broker_name: String = "brokerName",
        req broker_addr: String = "brokerAddr",
        req cluster_name: String = "clusterName",
        req broker_id: i64 = "brokerId",
    }
}

ext_header! {
    /// QUERY_DATA_VERSION answer.
    pub struct QueryDataVersionResponseHeader {
        req changed: bool = "changed",
    }
}

ext_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105).
    pub struct GetRouteInfoRequestHeader {
        req topic: String = "topic",
        opt accept_standard_json_only: bool = "acceptStandardJsonOnly",
    }
}

ext_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205).
    pub struct WipeWritePermOfBrokerRequestHeader {
        req broker_name: String = "brokerName",
    }
}

ext_header! {
    /// WIPE_WRITE_PERM_OF_BROKER answer.
    pub struct WipeWritePermOfBrokerResponseHeader {
        req wipe_topic_count: i32 = "wipeTopicCount",
    }
}

ext_header! {
    /// ADD_WRITE_PERM_OF_BROKER (327).
    pub struct AddWritePermOfBrokerRequestHeader {
        req broker_name: String = "brokerName",
    }
}

ext_header! {
    /// ADD_WRITE_PERM_OF_BROKER answer.
    pub struct AddWritePermOfBrokerResponseHeader {
        req add_topic_count: i32 = "addTopicCount",
    }
}

ext_header! {
    /// DELETE_TOPIC_IN_NAMESRV (216).
    pub struct DeleteTopicFromNamesrvRequestHeader {
        req topic: String = "topic",
        opt cluster_name: String = "clusterName",
    }
}

ext_header! {
    /// REGISTER_TOPIC_IN_NAMESRV (217); body TopicRouteData JSON.
    pub struct RegisterTopicRequestHeader {
        req topic: String = "topic",
    }
}

ext_header! {
    /// GET_TOPICS_BY_CLUSTER (224).
    pub struct GetTopicsByClusterRequestHeader {
        req cluster: String = "cluster",
    }
}

ext_header! {
    /// PUT_KV_CONFIG (100).
    pub struct PutKvConfigRequestHeader {
        req namespace: String = "namespace",
        req key: String = "key",
        req value: String = "value",
    }
}

ext_header! {
    /// GET_KV_CONFIG (101) and DELETE_KV_CONFIG (102).
    pub struct KvConfigKeyRequestHeader {
        req namespace: String = "namespace",
        req key: String = "key",
    }
}

pub type GetKvConfigRequestHeader = KvConfigKeyRequestHeader;
pub type DeleteKvConfigRequestHeader = KvConfigKeyRequestHeader;

ext_header! {
    /// GET_KV_CONFIG answer.
    pub struct GetKvConfigResponseHeader {
        opt value: String = "value",
    }
}

ext_header! {
    /// GET_KVLIST_BY_NAMESPACE (219).
    pub struct GetKvListByNamespaceRequestHeader {
        req namespace: String = "namespace",
    }
}
