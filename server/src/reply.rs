//! Building responses and reading request extFields: the small vocabulary every handler uses.
//!
//! Clients send extFields values as JSON strings or numbers (the C++ client mixes them); `net`
//! turns every value into a string, so the accessors here parse strings and name the field in
//! every error. Replies always carry an `extFields` object (the C++ client dereferences it).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use ferrocket_net::{ExtFields, RemotingCommand, FLAG_RESPONSE};

/// Response codes used by the broker and the nameserver (RocketMQ `ResponseCode`).
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const SYSTEM_BUSY: i32 = 2;
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    pub const MESSAGE_ILLEGAL: i32 = 13;
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    pub const NO_PERMISSION: i32 = 16;
    pub const TOPIC_NOT_EXIST: i32 = 17;
    pub const PULL_NOT_FOUND: i32 = 19;
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    pub const PULL_OFFSET_MOVED: i32 = 21;
    pub const QUERY_NOT_FOUND: i32 = 22;
    pub const SUBSCRIPTION_PARSE_FAILED: i32 = 23;
    pub const SUBSCRIPTION_NOT_EXIST: i32 = 24;
    pub const SUBSCRIPTION_NOT_LATEST: i32 = 25;
    pub const SUBSCRIPTION_GROUP_NOT_EXIST: i32 = 26;
    pub const INVALID_PARAMETER: i32 = 29;
    pub const CONSUMER_NOT_ONLINE: i32 = 206;
}

/// Request codes the broker and the nameserver answer or send (RocketMQ `RequestCode`).
pub mod req {
    pub const SEND_MESSAGE: i32 = 10;
    pub const PULL_MESSAGE: i32 = 11;
    pub const QUERY_MESSAGE: i32 = 12;
    pub const QUERY_CONSUMER_OFFSET: i32 = 14;
    pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
    pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
    pub const GET_ALL_TOPIC_CONFIG: i32 = 21;
    pub const UPDATE_BROKER_CONFIG: i32 = 25;
    pub const GET_BROKER_CONFIG: i32 = 26;
    pub const GET_BROKER_RUNTIME_INFO: i32 = 28;
    pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
    pub const GET_MAX_OFFSET: i32 = 30;
    pub const GET_MIN_OFFSET: i32 = 31;
    pub const GET_EARLIEST_MSG_STORETIME: i32 = 32;
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    pub const HEART_BEAT: i32 = 34;
    pub const UNREGISTER_CLIENT: i32 = 35;
    pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
    pub const END_TRANSACTION: i32 = 37;
    pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    pub const LOCK_BATCH_MQ: i32 = 41;
    pub const UNLOCK_BATCH_MQ: i32 = 42;
    pub const CHECK_CLIENT_CONFIG: i32 = 46;
    pub const REGISTER_BROKER: i32 = 103;
    pub const UNREGISTER_BROKER: i32 = 104;
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    pub const GET_ALL_TOPIC_LIST_FROM_NAMESERVER: i32 = 206;
    pub const GET_TOPICS_BY_CLUSTER: i32 = 224;
    pub const SEND_MESSAGE_V2: i32 = 310;
    pub const SEND_BATCH_MESSAGE: i32 = 320;
    pub const QUERY_DATA_VERSION: i32 = 322;
    pub const LITE_PULL_MESSAGE: i32 = 361;
}

/// A response to `req` with `code` and `remark`, an empty extFields object and no body.
pub fn reply(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> RemotingCommand {
    let remark = remark.into();
    RemotingCommand {
        code,
        language: "JAVA".to_string(),
        version: req.version,
        opaque: req.opaque,
        flag: FLAG_RESPONSE,
        remark: if remark.is_empty() {
            None
        } else {
            Some(remark)
        },
        ext_fields: ExtFields::new(),
        body: Default::default(),
    }
}

/// SUCCESS with no remark.
pub fn ok(req: &RemotingCommand) -> RemotingCommand {
    reply(req, code::SUCCESS, "")
}

/// The answer to a request code nobody handles (Java's wording).
pub fn not_supported(req: &RemotingCommand) -> RemotingCommand {
    reply(
        req,
        code::REQUEST_CODE_NOT_SUPPORTED,
        format!(" request type {} not supported", req.code),
    )
}

/// A request header that is missing a field or has a value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("the custom field <{0}> is null")]
    Missing(&'static str),
    #[error("the custom field <{field}> has a bad value {value:?}")]
    Bad { field: &'static str, value: String },
}

impl FieldError {
    /// The reply Java gives to an undecodable header (SYSTEM_ERROR with the field named).
    pub fn to_reply(&self, req: &RemotingCommand) -> RemotingCommand {
        reply(req, code::SYSTEM_ERROR, self.to_string())
    }
}

/// Typed reads of a request's extFields.
pub struct Fields<'a>(pub &'a ExtFields);

impl<'a> Fields<'a> {
    pub fn of(req: &'a RemotingCommand) -> Self {
        Fields(&req.ext_fields)
    }

    pub fn opt_str(&self, name: &'static str) -> Option<&'a str> {
        self.0.get(name)
    }

    pub fn str(&self, name: &'static str) -> Result<&'a str, FieldError> {
        self.opt_str(name).ok_or(FieldError::Missing(name))
    }

    fn parse<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, FieldError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => {
                let t = v.trim();
                // fastjson-style booleans/numbers may arrive as "1.0"? No: integers only, but
                // tolerate surrounding whitespace.
                t.parse::<T>().map(Some).map_err(|_| FieldError::Bad {
                    field: name,
                    value: v.to_owned(),
                })
            }
        }
    }

    pub fn opt_i64(&self, name: &'static str) -> Result<Option<i64>, FieldError> {
        self.parse::<i64>(name)
    }

    pub fn i64(&self, name: &'static str) -> Result<i64, FieldError> {
        self.opt_i64(name)?.ok_or(FieldError::Missing(name))
    }

    pub fn opt_i32(&self, name: &'static str) -> Result<Option<i32>, FieldError> {
        self.parse::<i32>(name)
    }

    pub fn i32(&self, name: &'static str) -> Result<i32, FieldError> {
        self.opt_i32(name)?.ok_or(FieldError::Missing(name))
    }

    /// Java `Boolean.parseBoolean`: "true" (any case) is true, anything else false; absent = None.
    pub fn opt_bool(&self, name: &'static str) -> Option<bool> {
        self.0
            .get(name)
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

/// Builder for response extFields (every value a string).
pub fn with_fields(mut cmd: RemotingCommand, fields: &[(&str, String)]) -> RemotingCommand {
    for (k, v) in fields {
        cmd.ext_fields.insert((*k).to_string(), v.clone());
    }
    cmd
}

/// Current wall-clock time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_and_name_errors() {
        let mut m = ExtFields::new();
        m.insert("queueId".to_string(), "3".to_string());
        m.insert("offset".to_string(), "x".to_string());
        m.insert("batch".to_string(), "TRUE".to_string());
        let f = Fields(&m);
        assert_eq!(f.i32("queueId"), Ok(3));
        assert_eq!(f.i32("missing"), Err(FieldError::Missing("missing")));
        assert!(matches!(
            f.i64("offset"),
            Err(FieldError::Bad {
                field: "offset",
                ..
            })
        ));
        assert_eq!(f.opt_bool("batch"), Some(true));
        assert_eq!(f.opt_bool("nope"), None);
    }

    #[test]
    fn reply_copies_opaque_and_is_response() {
        let req = RemotingCommand {
            code: 999,
            opaque: 42,
            ..Default::default()
        };
        let r = not_supported(&req);
        assert_eq!(r.opaque, 42);
        assert_eq!(r.flag & FLAG_RESPONSE, FLAG_RESPONSE);
        assert_eq!(r.code, code::REQUEST_CODE_NOT_SUPPORTED);
        assert!(r.remark.unwrap_or_default().contains("999"));
    }
}
