//! Topic and group name validation (owned by server-extra; agreed-signature stub).

/// Err = the Java remark text.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("The specified topic is blank.".to_string());
    }
    Ok(())
}

/// Err = the Java remark text.
pub fn validate_group(group: &str) -> Result<(), String> {
    if group.is_empty() {
        return Err("the specified group is blank".to_string());
    }
    Ok(())
}

/// Topics clients may not send to directly.
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    matches!(
        topic,
        "SCHEDULE_TOPIC_XXXX"
            | "RMQ_SYS_TRANS_HALF_TOPIC"
            | "RMQ_SYS_TRANS_OP_HALF_TOPIC"
            | "TRANS_CHECK_MAX_TIME_TOPIC"
            | "SELF_TEST_TOPIC"
            | "OFFSET_MOVED_EVENT"
    )
}
