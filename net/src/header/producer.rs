//! Producer-path headers: SEND_MESSAGE (v1 and V2 one-letter keys), batch, END_TRANSACTION,
//! CHECK_TRANSACTION_STATE, UNREGISTER_CLIENT.

use crate::error::Result;
use crate::header::codes::RequestCode;
use crate::header::ExtFields;
use crate::header::{ext_header, optional_raw, required_raw};

ext_header! {
    /// SEND_MESSAGE (10) request header, Java field names.
    pub struct SendMessageRequestHeader {
        req producer_group: String = "producerGroup",
        req topic: String = "topic",
        req default_topic: String = "defaultTopic",
        req default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        req queue_id: i32 = "queueId",
        req sys_flag: i32 = "sysFlag",
        req born_timestamp: i64 = "bornTimestamp",
        req flag: i32 = "flag",
        opt properties: String = "properties",
        opt reconsume_times: i32 = "reconsumeTimes",
        opt unit_mode: bool = "unitMode",
        opt batch: bool = "batch",
        opt max_reconsume_times: i32 = "maxReconsumeTimes",
        opt bname: String = "bname",
    }
}

ext_header! {
    /// SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): the same fields with one-letter keys.
    pub struct SendMessageRequestHeaderV2 {
        /// producerGroup
        req a: String = "a",
        /// topic
        req b: String = "b",
        /// defaultTopic
        req c: String = "c",
        /// defaultTopicQueueNums
        req d: i32 = "d",
        /// queueId
        req e: i32 = "e",
        /// sysFlag
        req f: i32 = "f",
        /// bornTimestamp
        req g: i64 = "g",
        /// flag
        req h: i32 = "h",
        /// properties
        opt i: String = "i",
        /// reconsumeTimes
        opt j: i32 = "j",
        /// unitMode
        opt k: bool = "k",
        /// maxReconsumeTimes
        opt l: i32 = "l",
        /// batch
        opt m: bool = "m",
        /// brokerName
        opt n: String = "n",
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v: SendMessageRequestHeaderV2) -> Self {
        SendMessageRequestHeader {
            producer_group: v.a,
            topic: v.b,
            default_topic: v.c,
            default_topic_queue_nums: v.d,
            queue_id: v.e,
            sys_flag: v.f,
            born_timestamp: v.g,
            flag: v.h,
            properties: v.i,
            reconsume_times: v.j,
            unit_mode: v.k,
            max_reconsume_times: v.l,
            batch: v.m,
            bname: v.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v: SendMessageRequestHeader) -> Self {
        SendMessageRequestHeaderV2 {
            a: v.producer_group,
            b: v.topic,
            c: v.default_topic,
            d: v.default_topic_queue_nums,
            e: v.queue_id,
            f: v.sys_flag,
            g: v.born_timestamp,
            h: v.flag,
            i: v.properties,
            j: v.reconsume_times,
            k: v.unit_mode,
            l: v.max_reconsume_times,
            m: v.batch,
            n: v.bname,
        }
    }
}

impl SendMessageRequestHeader {
    /// Decodes the send header whatever the code: one-letter keys for SEND_MESSAGE_V2,
    /// SEND_BATCH_MESSAGE and SEND_REPLY_MESSAGE_V2, Java names otherwise. For 320 `batch` is
    /// forced to true (the Java client sets `m`, but the code alone says it is a batch).
    pub fn decode_for(code: i32, ext: &ExtFields) -> Result<Self> {
        match code {
            RequestCode::SEND_MESSAGE_V2 | RequestCode::SEND_REPLY_MESSAGE_V2 => {
                SendMessageRequestHeaderV2::from_ext(ext).map(Into::into)
            }
            RequestCode::SEND_BATCH_MESSAGE => {
                let mut h: Self = SendMessageRequestHeaderV2::from_ext(ext)?.into();
                h.batch = Some(true);
                Ok(h)
            }
            _ => Self::from_ext(ext),
        }
    }
}

impl SendMessageRequestHeader {
    /// `decode_for` on a map the caller gives up (the request's extFields): one pass, strings
    /// moved. The broker's send path uses it; 14 SipHash lookups and five string copies per
    /// message were ~5k instructions (callgrind, 2026-11-21).
    pub fn take_for(code: i32, ext: ExtFields) -> Result<Self> {
        match code {
            RequestCode::SEND_MESSAGE_V2 | RequestCode::SEND_REPLY_MESSAGE_V2 => {
                SendMessageRequestHeaderV2::from_ext_owned(ext).map(Into::into)
            }
            RequestCode::SEND_BATCH_MESSAGE => {
                let mut h: Self = SendMessageRequestHeaderV2::from_ext_owned(ext)?.into();
                h.batch = Some(true);
                Ok(h)
            }
            _ => Self::from_ext_owned(ext),
        }
    }
}

/// The send header as the broker's send path reads it: the strings it only looks at (group,
/// topic, default topic, broker name) stay borrowed from the request's fields, the properties
/// (kept with the message) are moved out of them. [`SendMessageRequestHeader::view_for`]
/// decodes exactly what `take_for` decodes, errors included (test
/// `send_header_view_matches_take_for`), without `take_for`'s four string copies and its
/// generic per-field plumbing (~2.6k instructions per 128 B send, callgrind, 2026-11-22).
#[derive(Debug, Clone, PartialEq)]
pub struct SendHeaderView<'a> {
    pub producer_group: &'a str,
    pub topic: &'a str,
    pub default_topic: &'a str,
    pub default_topic_queue_nums: i32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: Option<String>,
    pub reconsume_times: Option<i32>,
    pub unit_mode: Option<bool>,
    pub batch: Option<bool>,
    pub max_reconsume_times: Option<i32>,
    pub bname: Option<&'a str>,
}

/// Wire keys of the send header's fields, by slot (see `send_slot`): one-letter (V2) keys and
/// Java names.
const SEND_KEYS_V2: [&str; 14] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
];
const SEND_KEYS_V1: [&str; 14] = [
    "producerGroup",
    "topic",
    "defaultTopic",
    "defaultTopicQueueNums",
    "queueId",
    "sysFlag",
    "bornTimestamp",
    "flag",
    "properties",
    "reconsumeTimes",
    "unitMode",
    "maxReconsumeTimes",
    "batch",
    "bname",
];

/// The slot of a send header key: producer group 0, topic 1, default topic 2, its queue count
/// 3, queue id 4, sysFlag 5, born timestamp 6, flag 7, properties 8, reconsume times 9, unit
/// mode 10, max reconsume times 11, batch 12, broker name 13. Other keys are ignored (as the
/// typed headers ignore them).
fn send_slot(v2: bool, key: &[u8]) -> Option<usize> {
    if v2 {
        return match key {
            [c @ b'a'..=b'n'] => Some(usize::from(c - b'a')),
            _ => None,
        };
    }
    SEND_KEYS_V1.iter().position(|k| k.as_bytes() == key)
}

impl SendMessageRequestHeader {
    /// `take_for` as a [`SendHeaderView`] borrowing `ext` (the request's fields, which the
    /// caller keeps alive while it uses the view). Same codes, same keys, same values, same
    /// first error in the same field order.
    pub fn view_for(code: i32, ext: &mut ExtFields) -> Result<SendHeaderView<'_>> {
        let v2 = matches!(
            code,
            RequestCode::SEND_MESSAGE_V2
                | RequestCode::SEND_REPLY_MESSAGE_V2
                | RequestCode::SEND_BATCH_MESSAGE
        );
        let keys = if v2 { &SEND_KEYS_V2 } else { &SEND_KEYS_V1 };
        let mut slots: [Option<usize>; 14] = [None; 14];
        for (at, key) in ext.key_bytes().enumerate() {
            if let Some(slot) = send_slot(v2, key).and_then(|i| slots.get_mut(i)) {
                *slot = Some(at);
            }
        }
        let slot = |i: usize| slots.get(i).copied().flatten();
        // The properties are moved out (when the fields own them) before the rest is borrowed.
        let properties_owned = slot(8).and_then(|at| ext.take_owned_value(at));
        let ext: &ExtFields = ext;
        let raw = |i: usize| slot(i).and_then(|at| ext.value_at(at));
        let key = |i: usize| keys.get(i).copied().unwrap_or("");
        let required_str =
            |i: usize| raw(i).ok_or(crate::error::WireError::MissingField { field: key(i) });
        // Integers and booleans as clients write them (`-?[0-9]{1,18}` in range, `true`,
        // `false`) are read straight from the value's bytes; anything else (absent, empty,
        // other forms, errors) goes through the general parsers, which define the result.
        let plain_int = |i: usize| {
            slot(i)
                .and_then(|at| ext.value_bytes_at(at))
                .and_then(super::parse_plain_int)
        };
        let req_i32 = |i: usize| match plain_int(i).and_then(|v| i32::try_from(v).ok()) {
            Some(v) => Ok(v),
            None => required_raw::<i32>(raw(i), key(i)),
        };
        let opt_i32 = |i: usize| match plain_int(i).and_then(|v| i32::try_from(v).ok()) {
            Some(v) => Ok(Some(v)),
            None => optional_raw::<i32>(raw(i), key(i)),
        };
        let opt_bool = |i: usize| match slot(i).and_then(|at| ext.value_bytes_at(at)) {
            Some(b"true") => Ok(Some(true)),
            Some(b"false") => Ok(Some(false)),
            _ => optional_raw::<bool>(raw(i), key(i)),
        };
        let producer_group = required_str(0)?;
        let topic = required_str(1)?;
        let default_topic = required_str(2)?;
        let default_topic_queue_nums = req_i32(3)?;
        let queue_id = req_i32(4)?;
        let sys_flag = req_i32(5)?;
        let born_timestamp = match plain_int(6) {
            Some(v) => v,
            None => required_raw::<i64>(raw(6), key(6))?,
        };
        let flag = req_i32(7)?;
        let properties = match properties_owned {
            Some(p) => Some(p),
            None => raw(8).map(str::to_owned),
        };
        let reconsume_times = opt_i32(9)?;
        let unit_mode = opt_bool(10)?;
        // The V2 header declares maxReconsumeTimes (l) before batch (m), the Java-named one
        // batch first: a bad value in both is reported for the first declared.
        let (max_reconsume_times, batch) = if v2 {
            let l = opt_i32(11)?;
            (l, opt_bool(12)?)
        } else {
            let m = opt_bool(12)?;
            (opt_i32(11)?, m)
        };
        let bname = raw(13);
        Ok(SendHeaderView {
            producer_group,
            topic,
            default_topic,
            default_topic_queue_nums,
            queue_id,
            sys_flag,
            born_timestamp,
            flag,
            properties,
            reconsume_times,
            unit_mode,
            batch: if code == RequestCode::SEND_BATCH_MESSAGE {
                Some(true)
            } else {
                batch
            },
            max_reconsume_times,
            bname,
        })
    }
}

ext_header! {
    /// Response header of every send code.
    /// Fields in the byte order of their keys, the order the JSON encoder writes them in: a
    /// reply built from this header is then already sorted (sorting it cost ~1k instructions).
    pub struct SendMessageResponseHeader {
        /// Broker region (Java default "DefaultRegion"); the Java client reads it on success.
        /// (`Cow`: the broker's usual values are constants, sent without a copy.)
        opt msg_region: std::borrow::Cow<'static, str> = "MSG_REGION",
        /// "true" by default in Java.
        opt trace_on: std::borrow::Cow<'static, str> = "TRACE_ON",
        opt batch_uniq_id: String = "batchUniqId",
        req msg_id: String = "msgId",
        req queue_id: i32 = "queueId",
        req queue_offset: i64 = "queueOffset",
        opt recall_handle: String = "recallHandle",
        opt transaction_id: String = "transactionId",
    }
}

ext_header! {
    /// END_TRANSACTION (37).
    pub struct EndTransactionRequestHeader {
        opt topic: String = "topic",
        req producer_group: String = "producerGroup",
        req tran_state_table_offset: i64 = "tranStateTableOffset",
        req commit_log_offset: i64 = "commitLogOffset",
        /// 0 unknown, 8 commit, 12 rollback.
        req commit_or_rollback: i32 = "commitOrRollback",
        opt from_transaction_check: bool = "fromTransactionCheck",
        req msg_id: String = "msgId",
        opt transaction_id: String = "transactionId",
    }
}

ext_header! {
    /// CHECK_TRANSACTION_STATE (39), broker → producer.
    pub struct CheckTransactionStateRequestHeader {
        opt topic: String = "topic",
        req tran_state_table_offset: i64 = "tranStateTableOffset",
        req commit_log_offset: i64 = "commitLogOffset",
        opt msg_id: String = "msgId",
        opt transaction_id: String = "transactionId",
        opt offset_msg_id: String = "offsetMsgId",
        opt bname: String = "bname",
    }
}

ext_header! {
    /// UNREGISTER_CLIENT (35).
    pub struct UnregisterClientRequestHeader {
        req client_id: String = "clientID",
        opt producer_group: String = "producerGroup",
        opt consumer_group: String = "consumerGroup",
    }
}

impl SendHeaderView<'_> {
    /// The same header with its strings copied: what `take_for` gives for the same fields (the
    /// tests and the `send_header` fuzz target compare the two this way).
    pub fn to_header(&self) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: self.producer_group.to_owned(),
            topic: self.topic.to_owned(),
            default_topic: self.default_topic.to_owned(),
            default_topic_queue_nums: self.default_topic_queue_nums,
            queue_id: self.queue_id,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            flag: self.flag,
            properties: self.properties.clone(),
            reconsume_times: self.reconsume_times,
            unit_mode: self.unit_mode,
            batch: self.batch,
            max_reconsume_times: self.max_reconsume_times,
            bname: self.bname.map(str::to_owned),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::header::json;
    use proptest::prelude::*;

    /// A JSON string literal of `s` with every character escaped or not at random (`\uXXXX`,
    /// the short escapes, or as is), so values and keys are sometimes plain, sometimes not.
    fn json_str(s: &str, escape: &[bool]) -> String {
        let mut out = String::from("\"");
        for (i, c) in s.chars().enumerate() {
            let esc = escape
                .get(i % escape.len().max(1))
                .copied()
                .unwrap_or(false);
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if esc && (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// One extFields value as a send header carries it: text (numbers, bools, strings with
    /// property separators, empty, bad numbers) written as a JSON string, or a JSON number,
    /// bool or null.
    fn arb_value() -> impl Strategy<Value = (String, Vec<bool>)> {
        let text = prop_oneof![
            "-?[0-9]{1,19}",
            Just(String::new()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("4.0".to_string()),
            Just(" 7 ".to_string()),
            Just("x1".to_string()),
            "[a-zA-Z0-9_%-]{0,12}",
            "[a-zA-Z_]{1,8}\u{1}[A-F0-9]{0,32}\u{2}(WAIT\u{1}true)?",
            "\\PC{0,6}",
        ];
        let escapes = prop::collection::vec(any::<bool>(), 1..4);
        let raw = prop_oneof![
            Just("7".to_string()),
            Just("-12".to_string()),
            Just("1700000000000".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("2.5".to_string()),
        ];
        prop_oneof![
            4 => (text, escapes).prop_map(|(t, e)| (json_str(&t, &e), e)),
            1 => raw.prop_map(|r| (r, vec![false])),
        ]
    }

    fn arb_send_json() -> impl Strategy<Value = (i32, String)> {
        let key = prop::sample::select(vec![
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
            "g",
            "h",
            "i",
            "j",
            "k",
            "l",
            "m",
            "n",
            "x",
            "topic",
            "queueId",
            "producerGroup",
            "defaultTopic",
            "defaultTopicQueueNums",
            "sysFlag",
            "bornTimestamp",
            "flag",
            "properties",
            "batch",
            "unitMode",
            "reconsumeTimes",
            "maxReconsumeTimes",
            "bname",
            "AccessKey",
        ]);
        // A complete valid V2 or V1 header underneath, so most cases decode; random fields on
        // top (replacing, adding unknown ones, or bad values), in random order.
        let code = prop::sample::select(vec![10, 310, 320, 325]);
        let extra = prop::collection::vec((key, arb_value(), any::<bool>()), 0..10);
        let drop = prop::collection::vec(any::<bool>(), 14);
        (code, extra, drop, any::<prop::sample::Index>()).prop_map(|(code, extra, drop, rot)| {
            let base_v2 = [
                ("a", "\"pg\""), ("b", "\"TopicTest\""), ("c", "\"TBW102\""), ("d", "\"4\""),
                ("e", "\"1\""), ("f", "\"0\""), ("g", "\"1700000000000\""), ("h", "0"),
                ("i", "\"UNIQ_KEY\\u0001AB\\u0002WAIT\\u0001true\\u0002\""), ("j", "\"0\""),
                ("k", "\"false\""), ("l", "16"), ("m", "false"), ("n", "\"broker-a\""),
            ];
            let v1_names = [
                "producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums", "queueId",
                "sysFlag", "bornTimestamp", "flag", "properties", "reconsumeTimes", "unitMode",
                "maxReconsumeTimes", "batch", "bname",
            ];
            let mut fields: Vec<(String, String)> = base_v2
                .iter()
                .zip(v1_names)
                .zip(&drop)
                // Sometimes a field is missing (required ones then give MissingField).
                .filter(|(_, &d)| !d || rot.index(7) == 0)
                .map(|(((k, v), v1), _)| {
                    let k = if code == 10 { v1 } else { k };
                    (format!("\"{k}\""), v.to_string())
                })
                .collect();
            for (k, (v, esc), escape_key) in extra {
                let k = if escape_key { json_str(k, &esc) } else { format!("\"{k}\"") };
                fields.push((k, v));
            }
            let n = fields.len().max(1);
            fields.rotate_left(rot.index(n) % n);
            let ext: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            let header = format!(
                "{{\"code\":{code},\"extFields\":{{{}}},\"flag\":0,\"language\":\"CPP\",\"opaque\":9,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":453}}",
                ext.join(",")
            );
            (code, header)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The broker's send path (fast JSON scanner, then `take_for`, moving owned values)
        /// decodes exactly what the general path (serde, then `decode_for` on borrowed
        /// fields) decodes, errors included: field order, escapes, unknown fields, numbers as
        /// strings or numbers, missing fields and bad values.
        #[test]
        fn send_header_fast_path_matches_the_general_path((code, h) in arb_send_json()) {
            let general = json::decode_reference(h.as_bytes())
                .map(|cmd| SendMessageRequestHeader::decode_for(code, &cmd.ext_fields).map_err(|e| e.to_string()));
            let fast = json::decode(h.as_bytes())
                .map(|cmd| SendMessageRequestHeader::take_for(code, cmd.ext_fields).map_err(|e| e.to_string()));
            prop_assert_eq!(fast.is_ok(), general.is_ok(), "{}", h);
            if let (Ok(f), Ok(g)) = (fast, general) {
                prop_assert_eq!(f, g, "{}", h);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The borrowing view decodes what `take_for` decodes, errors included, on the same
        /// fields (every code, escaped and plain values, missing and bad fields).
        #[test]
        fn send_header_view_matches_take_for((code, h) in arb_send_json()) {
            if let Ok(cmd) = json::decode(h.as_bytes()) {
                let taken = SendMessageRequestHeader::take_for(code, cmd.ext_fields.clone())
                    .map_err(|e| e.to_string());
                let mut ext = cmd.ext_fields;
                let viewed = SendMessageRequestHeader::view_for(code, &mut ext)
                    .map(|v| v.to_header())
                    .map_err(|e| e.to_string());
                prop_assert_eq!(viewed, taken, "{}", h);
            }
        }
    }

    #[test]
    fn send_header_fast_path_reports_bad_values_like_the_general_path() {
        let h = r#"{"code":310,"extFields":{"a":"pg","b":"T","c":"TBW102","d":"4","e":"x1","f":"0","g":"1","h":"0"},"language":"CPP","opaque":1,"version":1}"#;
        let fast = json::decode(h.as_bytes()).unwrap();
        let err = SendMessageRequestHeader::take_for(310, fast.ext_fields).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"bad header field e: "x1" (a 32-bit integer)"#
        );
    }
}
