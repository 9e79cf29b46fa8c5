//! Topic and group name validation (owned by server-extra; agreed-signature stub).

use crate::reply::code;

/// A refused name; `remark()` is Java's text, `code()` the response code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(String);

impl NameError {
    pub fn remark(&self) -> String {
        self.0.clone()
    }
    pub fn code(&self) -> i32 {
        code::INVALID_PARAMETER
    }
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn validate_topic(topic: &str) -> Result<(), NameError> {
    if topic.is_empty() {
        return Err(NameError("The specified topic is blank.".to_string()));
    }
    Ok(())
}

pub fn validate_group(group: &str) -> Result<(), NameError> {
    if group.is_empty() {
        return Err(NameError("the specified group is blank".to_string()));
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

pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";

pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}
