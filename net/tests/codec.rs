//! Codec tests: the reference's worked example byte for byte, C++-client-shaped requests, and
//! proptest round trips of both header encodings.

use std::collections::HashMap;

use bytes::Bytes;
use ferrocket_net::header::*;
use ferrocket_net::{Body, RemotingCommand, SerializeType, WireError};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn route_request() -> RemotingCommand {
    let mut cmd = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
    cmd.version = 479;
    cmd.opaque = 1;
    cmd.ext_fields.insert("topic".into(), "TopicTest".into());
    cmd
}

const WORKED_JSON: &str = r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#;

#[test]
fn worked_example_json_byte_for_byte() {
    assert_eq!(WORKED_JSON.len(), 131);
    let mut expected = hex("00 00 00 87 00 00 00 83");
    expected.extend_from_slice(WORKED_JSON.as_bytes());
    assert_eq!(expected.len(), 139);
    let encoded = route_request().encode(SerializeType::Json);
    assert_eq!(&encoded[..], &expected[..]);
    let decoded = RemotingCommand::decode(Bytes::from(expected).slice(4..)).unwrap();
    assert_eq!(decoded, route_request());
}

#[test]
fn worked_example_binary_byte_for_byte() {
    let expected = hex(
        "00 00 00 2d 01 00 00 29 00 69 00 01 df 00 00 00 01 00 00 00 00 00 00 00 00
         00 00 00 14 00 05 74 6f 70 69 63 00 00 00 09 54 6f 70 69 63 54 65 73 74",
    );
    assert_eq!(expected.len(), 49);
    let encoded = route_request().encode(SerializeType::RocketMq);
    assert_eq!(&encoded[..], &expected[..]);
    let decoded = RemotingCommand::decode(Bytes::from(expected).slice(4..)).unwrap();
    assert_eq!(decoded, route_request());
}

/// A SEND_MESSAGE_V2 request exactly as librocketmq 1.2.3 (jsoncpp FastWriter) writes it:
/// numbers in extFields, the three ACL keys, no serializeTypeCurrentRPC, a trailing newline.
const CPP_SEND: &str = concat!(
    r#"{"code":310,"extFields":{"AccessKey":"","OnsChannel":"","Signature":"","#,
    r#""a":"pg","b":"TopicTest","c":"TBW102","d":4,"e":2,"f":0,"g":"1700000000000","h":0,"#,
    r#""i":"UNIQ_KEY\u0001AC11\u0002WAIT\u0001true\u0002TAGS\u0001TagA\u0002","j":"0","k":"0","l":16,"m":"0"},"#,
    r#""flag":0,"language":"CPP","opaque":7,"remark":"","version":63}"#,
    "\n"
);

fn json_frame(header: &str, body: &[u8]) -> Bytes {
    let mut f = Vec::new();
    f.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    f.extend_from_slice(&(header.len() as u32).to_be_bytes());
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(body);
    Bytes::from(f)
}

#[test]
fn cpp_client_send_v2_decodes() {
    let frame = json_frame(CPP_SEND, b"hello");
    let cmd = RemotingCommand::decode(frame.slice(4..)).unwrap();
    assert_eq!(cmd.code, RequestCode::SEND_MESSAGE_V2);
    assert_eq!(cmd.language, "CPP");
    assert_eq!(cmd.version, 63);
    assert_eq!(cmd.opaque, 7);
    assert!(!cmd.is_oneway());
    assert_eq!(cmd.remark.as_deref(), Some(""));
    assert_eq!(cmd.body.to_bytes(), Bytes::from_static(b"hello"));
    assert_eq!(&cmd.ext_fields["Signature"], "");
    assert_eq!(&cmd.ext_fields["d"], "4");
    let h = SendMessageRequestHeader::decode_for(cmd.code, &cmd.ext_fields).unwrap();
    assert_eq!(h.producer_group, "pg");
    assert_eq!(h.topic, "TopicTest");
    assert_eq!(h.default_topic_queue_nums, 4);
    assert_eq!(h.queue_id, 2);
    assert_eq!(h.born_timestamp, 1_700_000_000_000);
    assert_eq!(h.unit_mode, Some(false));
    assert_eq!(h.batch, Some(false));
    assert_eq!(h.max_reconsume_times, Some(16));
    assert_eq!(
        h.properties.as_deref(),
        Some("UNIQ_KEY\u{1}AC11\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}")
    );
}

#[test]
fn cpp_client_pull_decodes() {
    let header = concat!(
        r#"{"code":11,"extFields":{"AccessKey":"","OnsChannel":"","Signature":"","#,
        r#""commitOffset":"0","consumerGroup":"g","maxMsgNums":32,"queueId":1,"queueOffset":"5","#,
        r#""subVersion":"0","subscription":"*","suspendTimeoutMillis":"15000","sysFlag":6,"topic":"T"},"#,
        r#""flag":0,"language":"CPP","opaque":3,"remark":"","version":63}"#,
        "\n"
    );
    let cmd = RemotingCommand::decode(json_frame(header, b"").slice(4..)).unwrap();
    let h = PullMessageRequestHeader::from_ext(&cmd.ext_fields).unwrap();
    assert_eq!(
        (h.queue_id, h.queue_offset, h.max_msg_nums, h.sys_flag),
        (1, 5, 32, 6)
    );
    assert_eq!(h.suspend_timeout_millis, 15000);
    assert_eq!(h.subscription.as_deref(), Some("*"));
}

#[test]
fn json_tolerates_bools_nulls_floats_and_missing_fields() {
    let h = r#"{"code":30,"extFields":{"topic":"T","queueId":3.0,"committed":true,"x":null}}"#;
    let cmd = RemotingCommand::decode(json_frame(h, b"").slice(4..)).unwrap();
    assert_eq!(cmd.language, "JAVA");
    assert_eq!(cmd.flag, 0);
    assert!(!cmd.ext_fields.contains_key("x"));
    let g = GetMaxOffsetRequestHeader::from_ext(&cmd.ext_fields).unwrap();
    assert_eq!(g.queue_id, 3);
    assert_eq!(g.committed, Some(true));
    // A header without extFields at all.
    let cmd =
        RemotingCommand::decode(json_frame(r#"{"code":34,"flag":2}"#, b"").slice(4..)).unwrap();
    assert!(cmd.ext_fields.is_empty());
    assert!(cmd.is_oneway());
}

#[test]
fn json_rejects_bad_headers() {
    for h in [
        "{",
        "[]",
        r#"{"code":"x"}"#,
        r#"{"code":1,"extFields":{"a":[1]}}"#,
        r#"{"code":1,"extFields":{"a":{"b":1}}}"#,
        r#"{"code":99999999999}"#,
    ] {
        assert!(
            RemotingCommand::decode(json_frame(h, b"").slice(4..)).is_err(),
            "{h}"
        );
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // Deep nesting in an unknown field is skipped without recursion; anywhere else it is an error.
    let h = format!(r#"{{"code":1,"x":{deep}}}"#);
    assert!(RemotingCommand::decode(json_frame(&h, b"").slice(4..)).is_ok());
    let h = format!(r#"{{"code":1,"extFields":{{"a":{deep}}}}}"#);
    assert!(RemotingCommand::decode(json_frame(&h, b"").slice(4..)).is_err());
    let h = format!(r#"{{"code":1,"remark":{deep}}}"#);
    assert!(RemotingCommand::decode(json_frame(&h, b"").slice(4..)).is_err());
    let mut bad_utf8 = br#"{"code":1,"remark":""#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    let mut f = (bad_utf8.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&bad_utf8);
    assert!(RemotingCommand::decode(Bytes::from(f)).is_err());
}

#[test]
fn typed_header_errors_name_the_field() {
    let mut ext = ExtFields::new();
    ext.insert("topic".into(), "T".into());
    let e = GetMaxOffsetRequestHeader::from_ext(&ext).unwrap_err();
    assert!(
        matches!(e, WireError::MissingField { field: "queueId" }),
        "{e}"
    );
    ext.insert("queueId".into(), "x1".into());
    let e = GetMaxOffsetRequestHeader::from_ext(&ext).unwrap_err();
    assert_eq!(e.field(), Some("queueId"));
    let req = RemotingCommand::request(30);
    let resp = RemotingCommand::bad_header(&req, &e);
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);
    assert!(
        resp.remark_str().contains("queueId"),
        "{}",
        resp.remark_str()
    );
    ext.insert("queueId".into(), "1".into());
    ext.insert("committed".into(), "maybe".into());
    assert_eq!(
        GetMaxOffsetRequestHeader::from_ext(&ext)
            .unwrap_err()
            .field(),
        Some("committed")
    );
    ext.insert("committed".into(), "".into());
    assert_eq!(
        GetMaxOffsetRequestHeader::from_ext(&ext).unwrap().committed,
        None
    );
}

#[test]
fn reply_shape_is_what_every_client_reads() {
    let req = route_request();
    let resp = RemotingCommand::success(&req).with_header(&OffsetResponseHeader { offset: 42 });
    let frame = resp.encode(SerializeType::Json);
    assert_eq!(frame[4], 0, "type byte 0 for the C++ client");
    let text = std::str::from_utf8(&frame[8..]).unwrap();
    assert_eq!(
        text,
        r#"{"code":0,"extFields":{"offset":"42"},"flag":1,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":453}"#
    );
    let empty = RemotingCommand::not_supported(&req).encode(SerializeType::Json);
    let text = std::str::from_utf8(&empty[8..]).unwrap();
    assert!(text.contains(r#""extFields":{}"#), "{text}");
    assert!(
        text.contains(r#""remark":" request type 105 not supported""#),
        "{text}"
    );
    assert!(text.contains(r#""code":3"#), "{text}");
}

#[test]
fn binary_rejects_lengths_past_the_header() {
    let good = route_request().encode(SerializeType::RocketMq);
    // Every truncation of the header is an error, never a panic.
    for cut in 0..41 {
        let mut f = good[4..8 + cut].to_vec();
        let word = (1u32 << 24) | cut as u32;
        f[..4].copy_from_slice(&word.to_be_bytes());
        assert!(
            RemotingCommand::decode(Bytes::from(f)).is_err(),
            "cut {cut}"
        );
    }
    // remark length 2^31-1 and negative.
    for bad in [i32::MAX, -1] {
        let mut f = good[4..].to_vec();
        f[4 + 13..4 + 17].copy_from_slice(&bad.to_be_bytes());
        assert!(RemotingCommand::decode(Bytes::from(f)).is_err());
    }
}

#[test]
fn send_v1_v2_and_batch_headers_agree() {
    let v1 = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "t".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 1,
        sys_flag: 0,
        born_timestamp: 5,
        flag: 0,
        properties: Some("a\u{1}b\u{2}".into()),
        ..Default::default()
    };
    let v2: SendMessageRequestHeaderV2 = v1.clone().into();
    let ext = v2.to_ext();
    assert_eq!(&ext["a"], "pg");
    assert_eq!(SendMessageRequestHeader::decode_for(310, &ext).unwrap(), v1);
    let batch = SendMessageRequestHeader::decode_for(320, &ext).unwrap();
    assert_eq!(batch.batch, Some(true));
    assert_eq!(
        SendMessageRequestHeader::decode_for(10, &v1.to_ext()).unwrap(),
        v1
    );
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_%]{0,12}",
        any::<String>(),
        Just("TAGS\u{1}a\u{2}KEYS\u{1}k\u{2}".to_string()),
    ]
}

fn arb_command() -> impl Strategy<Value = RemotingCommand> {
    (
        any::<i16>(),
        prop::sample::select(vec!["JAVA", "CPP", "GO", "RUST", "PYTHON", "OTHER"]),
        any::<i16>(),
        any::<i32>(),
        0i32..4,
        prop::option::of("[^\u{0}]{1,20}"),
        prop::collection::hash_map("[a-zA-Z_]{1,10}", arb_string(), 0..8),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(code, lang, version, opaque, flag, remark, ext, body)| RemotingCommand {
                code: i32::from(code),
                language: lang.to_string(),
                version: i32::from(version),
                opaque,
                flag,
                remark,
                ext_fields: ext.into(),
                body: if body.is_empty() {
                    Body::Empty
                } else {
                    Body::Bytes(Bytes::from(body))
                },
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), ..ProptestConfig::default() })]

    #[test]
    fn json_round_trip(cmd in arb_command()) {
        let frame = cmd.encode(SerializeType::Json);
        let back = RemotingCommand::decode(frame.slice(4..)).unwrap();
        prop_assert_eq!(back, cmd);
    }

    #[test]
    fn binary_round_trip(cmd in arb_command()) {
        let frame = cmd.encode(SerializeType::RocketMq);
        let back = RemotingCommand::decode(frame.slice(4..)).unwrap();
        prop_assert_eq!(back, cmd);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = RemotingCommand::decode(Bytes::from(bytes.clone()));
        let _ = ferrocket_net::frame::check(&bytes, 1 << 20);
        let mut ext = ExtFields::new();
        ext.insert("queueId".to_string(), String::from_utf8_lossy(&bytes).into_owned());
        let _ = GetMaxOffsetRequestHeader::from_ext(&ext);
    }

    #[test]
    fn pull_header_round_trip(q in any::<i32>(), off in any::<i64>(), sub in prop::option::of(arb_string())) {
        let h = PullMessageRequestHeader { consumer_group: "g".into(), topic: "t".into(), queue_id: q,
            queue_offset: off, max_msg_nums: 32, sys_flag: 6, commit_offset: 0, suspend_timeout_millis: 15000,
            subscription: sub, sub_version: 1, ..Default::default() };
        prop_assert_eq!(PullMessageRequestHeader::from_ext(&h.to_ext()).unwrap(), h);
    }
}

/// JSON text fragments for the differential test of the fast header scanner: valid and invalid
/// values of every kind the scanner treats specially (escapes, surrogates, numbers at the digit
/// limit, -0, fractions, nulls, nesting).
fn arb_json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_string().prop_map(|s| serde_json::to_string(&s).unwrap()),
        prop::sample::select(vec![
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "-7",
            "01",
            "1.0",
            "1e3",
            "-",
            "2147483647",
            "2147483648",
            "-2147483648",
            "-2147483649",
            "123456789012345678",
            "1234567890123456789",
            "-123456789012345678",
            "18446744073709551616",
            "[1]",
            "{}",
            "{\"a\":1}",
            "\"\\u0001\\u0002\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud83d\"",
            "\"\\ude00\"",
            "\"\\x\"",
            "\"a\\/b\\\"\\\\\\b\\f\\n\\r\\t\"",
            "\"\u{1}\"",
            "\"\\u00e9\"",
            "\"\\u0000\"",
            "tru",
            "nul",
            "\"unterminated",
        ])
        .prop_map(str::to_string),
    ]
}

fn arb_json_header() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "code",
        "language",
        "version",
        "opaque",
        "flag",
        "remark",
        "extFields",
        "serializeTypeCurrentRPC",
        "x",
        "c\\u006fde",
    ]);
    let ext_key = prop_oneof![
        "[a-zA-Z]{1,3}".prop_map(|k| format!("\"{k}\"")),
        Just("\"k\\u0001\"".to_string()),
        Just("\"\\ud800\"".to_string()),
    ];
    let ext = prop::collection::vec((ext_key, arb_json_value()), 0..6).prop_map(|kv| {
        let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    let value = prop_oneof![arb_json_value(), ext];
    let ws = prop::sample::select(vec!["", " ", "\n", "\t", "\r\n", "\u{c}"]);
    prop::collection::vec((key, value, ws), 0..9).prop_map(|fields| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
            .collect();
        format!("{{{}}}\n", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, rng_seed: proptest::test_runner::RngSeed::Fixed(0xfa57), ..ProptestConfig::default() })]

    /// The fast scanner answers only when serde would give the same command.
    #[test]
    fn json_fast_path_agrees_with_serde(h in arb_json_header(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
        let h = h.into_bytes();
        let reference = json::decode_reference(&h).ok();
        if let Some(fast) = json::decode_fast(&h) {
            prop_assert_eq!(Some(fast), reference);
        }
        // A truncated or corrupted copy too.
        let mut bad = h.clone();
        if !bad.is_empty() {
            let i = cut.index(bad.len());
            bad[i] ^= flip;
            if let Some(fast) = json::decode_fast(&bad) {
                prop_assert_eq!(Some(fast), json::decode_reference(&bad).ok());
            }
            bad.truncate(i);
            if let Some(fast) = json::decode_fast(&bad) {
                prop_assert_eq!(Some(fast), json::decode_reference(&bad).ok());
            }
        }
    }

    /// What our encoder writes takes the fast path.
    #[test]
    fn json_fast_path_takes_our_own_headers(cmd in arb_command()) {
        let head = cmd.encode_header(SerializeType::Json);
        prop_assert_eq!(json::decode_fast(&head), json::decode_reference(&head).ok());
        prop_assert!(json::decode_fast(&head).is_some());
    }
}

#[test]
fn json_fast_path_takes_client_shaped_headers() {
    for h in [CPP_SEND, WORKED_JSON] {
        let fast = json::decode_fast(h.as_bytes()).expect("fast path");
        assert_eq!(Some(fast), json::decode_reference(h.as_bytes()).ok());
    }
    // What the Java client writes for SEND_MESSAGE_V2 (numbers as strings, properties escaped).
    let java = r#"{"code":310,"extFields":{"a":"pg","b":"T","c":"TBW102","d":"4","e":"1","f":"0","g":"1700000000000","h":"0","i":"UNIQ_KEY\u0001AB\u0002WAIT\u0001true\u0002","j":"0","k":"false","m":"false","n":"broker-a"},"flag":0,"language":"JAVA","opaque":12,"serializeTypeCurrentRPC":"JSON","version":453}"#;
    let fast = json::decode_fast(java.as_bytes()).expect("fast path");
    assert_eq!(
        &fast.ext_fields["i"],
        "UNIQ_KEY\u{1}AB\u{2}WAIT\u{1}true\u{2}"
    );
    assert_eq!(Some(fast), json::decode_reference(java.as_bytes()).ok());
}

fn arb_send_ext() -> impl Strategy<Value = HashMap<String, String>> {
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
    ]);
    let value = prop_oneof![
        Just(String::new()),
        "-?[0-9]{1,12}",
        Just("true".to_string()),
        Just("1.0".to_string()),
        arb_string(),
    ];
    prop::collection::hash_map(key.prop_map(str::to_string), value, 0..20)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, rng_seed: proptest::test_runner::RngSeed::Fixed(0x7a4e), ..ProptestConfig::default() })]

    /// The owning send-header decoder gives what the borrowing one gives, errors included.
    #[test]
    fn send_header_take_for_matches_decode_for(ext in arb_send_ext(), code in prop::sample::select(vec![10, 310, 320, 325])) {
        let ext = ExtFields::from(ext);
        let by_ref = SendMessageRequestHeader::decode_for(code, &ext).map_err(|e| e.to_string());
        let owned = SendMessageRequestHeader::take_for(code, ext.clone()).map_err(|e| e.to_string());
        prop_assert_eq!(owned, by_ref);
        // On top of a complete valid header, so most cases decode.
        let v1 = SendMessageRequestHeader { producer_group: "pg".into(), topic: "t".into(),
            default_topic: "TBW102".into(), default_topic_queue_nums: 4, queue_id: 1,
            born_timestamp: 5, properties: Some("a\u{1}b\u{2}".into()), ..Default::default() };
        let mut full = if code == 10 { v1.to_ext() } else { SendMessageRequestHeaderV2::from(v1).to_ext() };
        full.extend(ext.iter().filter(|(k, _)| k.len() > 1 || *k > "e"));
        let by_ref = SendMessageRequestHeader::decode_for(code, &full).map_err(|e| e.to_string());
        let owned = SendMessageRequestHeader::take_for(code, full).map_err(|e| e.to_string());
        prop_assert_eq!(owned, by_ref);
    }
}
