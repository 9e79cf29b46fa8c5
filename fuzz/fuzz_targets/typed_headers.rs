//! Fuzz the typed header parsers: arbitrary extFields (from a JSON header) through every typed
//! header; `Ok` or an error naming a field, never a panic; `Ok` headers round-trip via `to_ext`.
#![no_main]

use std::collections::HashMap;

use ferrocket_net::header::*;
use ferrocket_net::WireError;
use libfuzzer_sys::fuzz_target;

fn check<H: CommandHeader + PartialEq + std::fmt::Debug>(ext: &ExtFields) {
    match H::from_ext(ext) {
        Ok(h) => {
            let back = H::from_ext(&h.to_ext()).expect("to_ext output parses");
            assert_eq!(back, h);
        }
        Err(e) => {
            assert!(matches!(e, WireError::MissingField { .. } | WireError::BadField { .. }));
            assert!(e.field().is_some());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Keys the headers use, so the fuzzer hits values rather than missing fields.
    const KEYS: [&str; 24] = [
        "topic", "queueId", "consumerGroup", "queueOffset", "maxMsgNums", "sysFlag",
        "commitOffset", "suspendTimeoutMillis", "subVersion", "producerGroup", "defaultTopic",
        "defaultTopicQueueNums", "bornTimestamp", "flag", "a", "b", "c", "d", "e", "f", "g", "h",
        "brokerId", "timestamp",
    ];
    let mut ext = HashMap::new();
    for (i, chunk) in data.split(|b| *b == 0).enumerate() {
        let key = KEYS.get(i % KEYS.len()).copied().unwrap_or("x");
        ext.insert(key.to_owned(), String::from_utf8_lossy(chunk).into_owned());
    }
    for extra in ["brokerName", "brokerAddr", "clusterName", "haServerAddr", "msgId", "key",
        "group", "offset", "delayLevel", "clientID", "maxNum", "beginTimestamp", "endTimestamp"] {
        ext.entry(extra.to_owned()).or_insert_with(|| "1".to_owned());
    }
    let ext = ExtFields::from(ext);
    check::<SendMessageRequestHeader>(&ext);
    check::<SendMessageRequestHeaderV2>(&ext);
    let _ = SendMessageRequestHeader::decode_for(320, &ext);
    check::<SendMessageResponseHeader>(&ext);
    check::<PullMessageRequestHeader>(&ext);
    check::<PullMessageResponseHeader>(&ext);
    check::<QueryConsumerOffsetRequestHeader>(&ext);
    check::<UpdateConsumerOffsetRequestHeader>(&ext);
    check::<GetMaxOffsetRequestHeader>(&ext);
    check::<GetMinOffsetRequestHeader>(&ext);
    check::<SearchOffsetRequestHeader>(&ext);
    check::<GetEarliestMsgStoretimeRequestHeader>(&ext);
    check::<ConsumerSendMsgBackRequestHeader>(&ext);
    check::<EndTransactionRequestHeader>(&ext);
    check::<UnregisterClientRequestHeader>(&ext);
    check::<QueryMessageRequestHeader>(&ext);
    check::<ViewMessageRequestHeader>(&ext);
    check::<RegisterBrokerRequestHeader>(&ext);
    check::<UnregisterBrokerRequestHeader>(&ext);
    check::<GetRouteInfoRequestHeader>(&ext);
    check::<CreateTopicRequestHeader>(&ext);
    check::<ResetOffsetRequestHeader>(&ext);
    check::<OffsetResponseHeader>(&ext);
});
