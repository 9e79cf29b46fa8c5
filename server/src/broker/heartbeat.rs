//! HEART_BEAT body parsing (`HeartbeatData` JSON). Accepts what real clients send: enums as
//! names (Java) or ordinals (C++), `subVersion` as number or string, absent sets, unknown fields.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use serde_json::Value;

use super::subscription::SubscriptionData;

/// Bounds on one heartbeat (a hostile body cannot make the broker allocate without limit).
pub const GROUPS_MAX: usize = 10_000;
pub const SUBSCRIPTIONS_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeType {
    /// pull consumer (`CONSUME_ACTIVELY`)
    Actively,
    /// push consumer (`CONSUME_PASSIVELY`)
    Passively,
    Pop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageModel {
    Broadcasting,
    Clustering,
}

impl ConsumeType {
    pub fn name(self) -> &'static str {
        match self {
            ConsumeType::Actively => "CONSUME_ACTIVELY",
            ConsumeType::Passively => "CONSUME_PASSIVELY",
            ConsumeType::Pop => "CONSUME_POP",
        }
    }
}

impl MessageModel {
    pub fn name(self) -> &'static str {
        match self {
            MessageModel::Broadcasting => "BROADCASTING",
            MessageModel::Clustering => "CLUSTERING",
        }
    }
}

/// `ConsumeFromWhere` names in Java declaration order (C++ sends the ordinal).
pub const CONSUME_FROM_WHERE: [&str; 6] = [
    "CONSUME_FROM_LAST_OFFSET",
    "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
    "CONSUME_FROM_MIN_OFFSET",
    "CONSUME_FROM_MAX_OFFSET",
    "CONSUME_FROM_FIRST_OFFSET",
    "CONSUME_FROM_TIMESTAMP",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerData {
    pub group_name: String,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    /// The Java enum name.
    pub consume_from_where: String,
    pub subscriptions: Vec<SubscriptionData>,
    pub unit_mode: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatData {
    pub client_id: String,
    pub producer_groups: Vec<String>,
    pub consumers: Vec<ConsumerData>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat body is not JSON: {0}")]
    Json(String),
    #[error("heartbeat body lacks clientID")]
    NoClientId,
    #[error("heartbeat field {field} has a bad value: {value}")]
    Bad { field: &'static str, value: String },
    #[error("heartbeat has too many {0}")]
    TooMany(&'static str),
}

fn enum_index(
    v: Option<&Value>,
    names: &[&str],
    field: &'static str,
    default: usize,
) -> Result<usize, HeartbeatError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < names.len())
            .ok_or_else(|| HeartbeatError::Bad {
                field,
                value: n.to_string(),
            }),
        Some(Value::String(s)) => names
            .iter()
            .position(|n| n == s)
            .or_else(|| s.parse::<usize>().ok().filter(|i| *i < names.len()))
            .ok_or_else(|| HeartbeatError::Bad {
                field,
                value: s.clone(),
            }),
        Some(other) => Err(HeartbeatError::Bad {
            field,
            value: other.to_string(),
        }),
    }
}

fn as_i64(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn parse_subscription(v: &Value) -> Option<SubscriptionData> {
    let topic = v.get("topic")?.as_str()?;
    let sub_string = v.get("subString").and_then(Value::as_str);
    let version = as_i64(v.get("subVersion"));
    let expression_type = v
        .get("expressionType")
        .and_then(Value::as_str)
        .unwrap_or("TAG")
        .to_string();
    // Tags and codes are recomputed from the expression: the C++ client's codeSet holds
    // atoi(tag), not the hash, so its own sets cannot be trusted.
    let mut data = match SubscriptionData::parse(topic, sub_string, version) {
        Ok(d) => d,
        Err(_) => {
            let mut d = SubscriptionData::parse(topic, None, version).ok()?;
            d.sub_string = sub_string.unwrap_or_default().to_string();
            d
        }
    };
    if expression_type != "TAG" {
        data.sub_string = sub_string.unwrap_or_default().to_string();
    }
    data.expression_type = expression_type;
    Some(data)
}

/// Parses a HeartbeatData body.
pub fn parse(body: &[u8]) -> Result<HeartbeatData, HeartbeatError> {
    let v = crate::json::parse_lenient(body).map_err(HeartbeatError::Json)?;
    let client_id = v
        .get("clientID")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(HeartbeatError::NoClientId)?
        .to_string();
    let producers = array(v.get("producerDataSet"));
    let consumers = array(v.get("consumerDataSet"));
    if producers.len() > GROUPS_MAX || consumers.len() > GROUPS_MAX {
        return Err(HeartbeatError::TooMany("groups"));
    }
    let producer_groups = producers
        .iter()
        .filter_map(|p| p.get("groupName").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let mut out = Vec::with_capacity(consumers.len());
    for c in consumers {
        let Some(group) = c.get("groupName").and_then(Value::as_str) else {
            continue;
        };
        let consume_type = match enum_index(
            c.get("consumeType"),
            &["CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP"],
            "consumeType",
            1,
        )? {
            0 => ConsumeType::Actively,
            2 => ConsumeType::Pop,
            _ => ConsumeType::Passively,
        };
        let message_model = match enum_index(
            c.get("messageModel"),
            &["BROADCASTING", "CLUSTERING"],
            "messageModel",
            1,
        )? {
            0 => MessageModel::Broadcasting,
            _ => MessageModel::Clustering,
        };
        let cfw = enum_index(
            c.get("consumeFromWhere"),
            &CONSUME_FROM_WHERE,
            "consumeFromWhere",
            0,
        )?;
        let subs = array(c.get("subscriptionDataSet"));
        if subs.len() > SUBSCRIPTIONS_MAX {
            return Err(HeartbeatError::TooMany("subscriptions"));
        }
        out.push(ConsumerData {
            group_name: group.to_string(),
            consume_type,
            message_model,
            consume_from_where: CONSUME_FROM_WHERE
                .get(cfw)
                .copied()
                .unwrap_or_default()
                .to_string(),
            subscriptions: subs.iter().filter_map(parse_subscription).collect(),
            unit_mode: c.get("unitMode").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Ok(HeartbeatData {
        client_id,
        producer_groups,
        consumers: out,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn cpp_client_heartbeat_with_ordinals_and_absent_sets() {
        let body = br#"{"clientID":"1234-127.0.0.1@inst","consumerDataSet":[{"groupName":"g1","consumeFromWhere":0,"consumeType":1,"messageModel":1,"subscriptionDataSet":[{"subString":"TagA || TagB","subVersion":"1700000000000","topic":"T","tagsSet":["TagA","TagB"],"codeSet":[0,0]},{"subString":"*","subVersion":"1","topic":"%RETRY%g1"}]},{"groupName":"g2","consumeType":0,"messageModel":0}],"producerDataSet":[{"groupName":"p1"}]}"#;
        let hb = parse(body).unwrap();
        assert_eq!(hb.client_id, "1234-127.0.0.1@inst");
        assert_eq!(hb.producer_groups, vec!["p1"]);
        assert_eq!(hb.consumers.len(), 2);
        let c = &hb.consumers[0];
        assert_eq!(c.consume_type, ConsumeType::Passively);
        assert_eq!(c.message_model, MessageModel::Clustering);
        assert_eq!(c.consume_from_where, "CONSUME_FROM_LAST_OFFSET");
        assert_eq!(c.subscriptions.len(), 2);
        let s = &c.subscriptions[0];
        assert_eq!(s.sub_version, 1_700_000_000_000);
        // the client's bogus codeSet [0,0] is replaced by real hashes
        assert_eq!(
            s.code_set.iter().copied().collect::<Vec<_>>(),
            vec![2_598_919, 2_598_920]
        );
        assert!(c.subscriptions[1].is_all());
        let g2 = &hb.consumers[1];
        assert_eq!(g2.consume_type, ConsumeType::Actively);
        assert_eq!(g2.message_model, MessageModel::Broadcasting);
        assert!(g2.subscriptions.is_empty());
    }

    #[test]
    fn java_client_heartbeat_with_names() {
        let body = br#"{"clientID":"10.0.0.1@123","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"BROADCASTING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":17,"tagsSet":[],"topic":"T"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}"#;
        let hb = parse(body).unwrap();
        let c = &hb.consumers[0];
        assert_eq!(c.message_model, MessageModel::Broadcasting);
        assert_eq!(c.consume_from_where, "CONSUME_FROM_FIRST_OFFSET");
        assert_eq!(c.subscriptions[0].sub_version, 17);
    }

    #[test]
    fn producer_only_and_bad_bodies() {
        let hb = parse(br#"{"clientID":"x","producerDataSet":[{"groupName":"p"}]}"#).unwrap();
        assert!(hb.consumers.is_empty());
        assert_eq!(parse(b"{}"), Err(HeartbeatError::NoClientId));
        assert!(matches!(parse(b"not json"), Err(HeartbeatError::Json(_))));
        assert!(matches!(
            parse(br#"{"clientID":"x","consumerDataSet":[{"groupName":"g","messageModel":7}]}"#),
            Err(HeartbeatError::Bad {
                field: "messageModel",
                ..
            })
        ));
    }
}
