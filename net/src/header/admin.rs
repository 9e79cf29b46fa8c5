//! Broker admin headers (mqadmin, dashboard). UPDATE_BROKER_CONFIG, HEART_BEAT and the lock
//! codes carry everything in the body ([`crate::header::EmptyHeader`]).

use crate::header::ext_header;

ext_header! {
    /// UPDATE_AND_CREATE_TOPIC (17).
    pub struct CreateTopicRequestHeader {
        req topic: String = "topic",
        req default_topic: String = "defaultTopic",
        req read_queue_nums: i32 = "readQueueNums",
        req write_queue_nums: i32 = "writeQueueNums",
        req perm: i32 = "perm",
        /// SINGLE_TAG / MULTI_TAG.
        req topic_filter_type: String = "topicFilterType",
        opt topic_sys_flag: i32 = "topicSysFlag",
        /// Java default false; not every client sends it.
        opt order: bool = "order",
        opt attributes: String = "attributes",
        opt force: bool = "force",
    }
}

ext_header! {
    /// DELETE_TOPIC_IN_BROKER (215), GET_TOPIC_CONFIG (351), GET_TOPIC_STATS_INFO (202),
    /// QUERY_TOPIC_CONSUME_BY_WHO (300): just a topic.
    pub struct TopicRequestHeader {
        req topic: String = "topic",
    }
}

pub type DeleteTopicRequestHeader = TopicRequestHeader;
pub type GetTopicConfigRequestHeader = TopicRequestHeader;
pub type GetTopicStatsInfoRequestHeader = TopicRequestHeader;
pub type QueryTopicConsumeByWhoRequestHeader = TopicRequestHeader;

ext_header! {
    /// GET_ALL_TOPIC_CONFIG (21); all absent = everything.
    pub struct GetAllTopicConfigRequestHeader {
        opt topic_seq: i32 = "topicSeq",
        opt data_version: String = "dataVersion",
        opt max_topic_num: i32 = "maxTopicNum",
    }
}

ext_header! {
    /// GET_ALL_TOPIC_CONFIG answer.
    pub struct GetAllTopicConfigResponseHeader {
        opt total_topic_num: i32 = "totalTopicNum",
    }
}

ext_header! {
    /// GET_BROKER_CONFIG (26) answer: the DataVersion JSON.
    pub struct GetBrokerConfigResponseHeader {
        opt version: String = "version",
    }
}

ext_header! {
    /// DELETE_SUBSCRIPTIONGROUP (207).
    pub struct DeleteSubscriptionGroupRequestHeader {
        req group_name: String = "groupName",
        opt clean_offset: bool = "cleanOffset",
    }
}

ext_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG (352), QUERY_TOPICS_BY_CONSUMER (343).
    pub struct GroupRequestHeader {
        req group: String = "group",
    }
}

pub type GetSubscriptionGroupConfigRequestHeader = GroupRequestHeader;
pub type QueryTopicsByConsumerRequestHeader = GroupRequestHeader;

ext_header! {
    /// QUERY_SUBSCRIPTION_BY_CONSUMER (345), QUERY_CONSUME_TIME_SPAN (303).
    pub struct GroupTopicRequestHeader {
        req group: String = "group",
        req topic: String = "topic",
    }
}

pub type QuerySubscriptionByConsumerRequestHeader = GroupTopicRequestHeader;
pub type QueryConsumeTimeSpanRequestHeader = GroupTopicRequestHeader;

ext_header! {
    /// GET_CONSUME_STATS (208).
    pub struct GetConsumeStatsRequestHeader {
        req consumer_group: String = "consumerGroup",
        opt topic: String = "topic",
        /// `;`-separated.
        opt topic_list: String = "topicList",
    }
}

ext_header! {
    /// GET_CONSUMER_CONNECTION_LIST (203).
    pub struct GetConsumerConnectionListRequestHeader {
        req consumer_group: String = "consumerGroup",
    }
}

ext_header! {
    /// GET_PRODUCER_CONNECTION_LIST (204).
    pub struct GetProducerConnectionListRequestHeader {
        req producer_group: String = "producerGroup",
    }
}

ext_header! {
    /// CLONE_GROUP_OFFSET (314).
    pub struct CloneGroupOffsetRequestHeader {
        req src_group: String = "srcGroup",
        req dest_group: String = "destGroup",
        opt topic: String = "topic",
        opt offline: bool = "offline",
    }
}

ext_header! {
    /// VIEW_BROKER_STATS_DATA (315).
    pub struct ViewBrokerStatsDataRequestHeader {
        req stats_name: String = "statsName",
        req stats_key: String = "statsKey",
    }
}

ext_header! {
    /// GET_BROKER_CONSUME_STATS (317).
    pub struct GetConsumeStatsInBrokerHeader {
        opt is_order: bool = "isOrder",
    }
}

ext_header! {
    /// QUERY_CORRECTION_OFFSET (308).
    pub struct QueryCorrectionOffsetHeader {
        opt filter_groups: String = "filterGroups",
        req compare_group: String = "compareGroup",
        req topic: String = "topic",
    }
}

ext_header! {
    /// QUERY_CONSUME_QUEUE (321).
    pub struct QueryConsumeQueueRequestHeader {
        req topic: String = "topic",
        req queue_id: i32 = "queueId",
        req index: i64 = "index",
        req count: i32 = "count",
        opt consumer_group: String = "consumerGroup",
    }
}

ext_header! {
    /// RESUME_CHECK_HALF_MESSAGE (323).
    pub struct ResumeCheckHalfMessageRequestHeader {
        opt topic: String = "topic",
        opt msg_id: String = "msgId",
    }
}
