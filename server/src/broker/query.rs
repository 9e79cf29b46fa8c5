//! Message queries: QUERY_MESSAGE (by key through the IndexFile, re-filtered by key because the
//! index is a hash) and VIEW_MESSAGE_BY_ID (one record by CommitLog offset). Bodies are the
//! stored records themselves, sent as file regions (zero-copy).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::sync::Arc;

use ferrocket_net::{Body, FileRegion, RemotingCommand};
use ferrocket_store::record::{
    decode_record, PROPERTY_KEYS, PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
};
use ferrocket_store::{MessageStore, Slice};

use super::pull::SliceRegion;
use super::{Broker, ConnectionHandle};
use crate::config::BrokerConfig;
use crate::reply::{code, ok, reply, req, with_fields, Fields};

/// Request codes answered here.
pub const CODES: &[i32] = &[req::QUERY_MESSAGE, req::VIEW_MESSAGE_BY_ID];

/// extField a client sets when querying by UNIQ_KEY (`MixAll.UNIQUE_MSG_QUERY_FLAG`).
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

/// Longest key accepted (keys are hashed, never used as names; this only bounds work).
pub const QUERY_KEY_LEN_MAX: usize = 4096;

/// Records as a zero-copy body.
pub fn regions_body(slices: Vec<Slice>) -> Body {
    Body::Regions(
        slices
            .into_iter()
            .map(|s| Arc::new(SliceRegion(s)) as Arc<dyn FileRegion>)
            .collect(),
    )
}

/// Answers QUERY_MESSAGE and VIEW_MESSAGE_BY_ID.
pub async fn handle(
    b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    let store = b.store.clone();
    let conf = b.conf();
    // Index and CommitLog reads may touch the disk: keep them off the async workers.
    let r = tokio::task::spawn_blocking(move || match req.code {
        req::QUERY_MESSAGE => query_message(&store, &conf, &req),
        _ => view_message(&store, &req),
    })
    .await;
    Some(r.unwrap_or_else(|e| {
        tracing::error!("query task failed: {e}");
        RemotingCommand {
            code: code::SYSTEM_ERROR,
            flag: ferrocket_net::FLAG_RESPONSE,
            language: "JAVA".to_string(),
            remark: Some("query failed".to_string()),
            ..Default::default()
        }
    }))
}

/// QUERY_MESSAGE (12): `topic`, `key`, `maxNum`, `beginTimestamp`, `endTimestamp`.
pub fn query_message(
    store: &MessageStore,
    conf: &BrokerConfig,
    req: &RemotingCommand,
) -> RemotingCommand {
    let f = Fields::of(req);
    let parsed = (|| {
        Ok::<_, crate::reply::FieldError>((
            f.str("topic")?,
            f.str("key")?,
            f.i32("maxNum")?,
            f.i64("beginTimestamp")?,
            f.i64("endTimestamp")?,
        ))
    })();
    let (topic, key, max_num, begin, end) = match parsed {
        Ok(p) => p,
        Err(e) => return e.to_reply(req),
    };
    let unique = f
        .opt_str(UNIQUE_MSG_QUERY_FLAG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let max = if unique {
        conf.default_query_max_num
    } else {
        u32::try_from(max_num).unwrap_or(0)
    }
    .min(conf.max_msgs_num_batch);
    let mut found = Vec::new();
    let (ts, phy) = if key.is_empty() || key.len() > QUERY_KEY_LEN_MAX || max == 0 {
        (0, 0)
    } else {
        let result = store.query_by_key(topic, key, max, begin, end);
        found = result
            .messages
            .into_iter()
            .filter(|s| record_matches(s.as_bytes(), topic, key, unique))
            .collect();
        (
            result.index_last_update_timestamp,
            result.index_last_update_phy_offset,
        )
    };
    let fields = [
        ("indexLastUpdateTimestamp", ts.to_string()),
        ("indexLastUpdatePhyoffset", phy.to_string()),
    ];
    if found.is_empty() {
        return with_fields(
            reply(
                req,
                code::QUERY_NOT_FOUND,
                "can not find message, maybe time range not correct",
            ),
            &fields,
        );
    }
    let mut r = with_fields(ok(req), &fields);
    r.body = regions_body(found);
    r
}

/// True if the stored record belongs to `topic` and carries `key` (in KEYS, space-separated,
/// or as its UNIQ_KEY for a unique-key query). The index is a hash, so collisions are dropped here.
pub fn record_matches(record: &[u8], topic: &str, key: &str, unique: bool) -> bool {
    let Ok(r) = decode_record(record) else {
        return false;
    };
    if r.topic != topic {
        return false;
    }
    if unique {
        return r.property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX) == Some(key);
    }
    r.property(PROPERTY_KEYS)
        .is_some_and(|keys| keys.split(' ').any(|k| k == key))
        || r.property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX) == Some(key)
}

/// VIEW_MESSAGE_BY_ID (33): `offset` = CommitLog offset; the body is that one record.
pub fn view_message(store: &MessageStore, req: &RemotingCommand) -> RemotingCommand {
    let offset = match Fields::of(req).i64("offset") {
        Ok(o) => o,
        Err(e) => return e.to_reply(req),
    };
    let not_found = || {
        reply(
            req,
            code::SYSTEM_ERROR,
            format!("can not find message by the offset, {offset}"),
        )
    };
    let Ok(phy) = u64::try_from(offset) else {
        return not_found();
    };
    match store.read_at(phy) {
        Ok(Some(slice)) => {
            let mut r = ok(req);
            r.body = regions_body(vec![slice]);
            r
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::warn!("VIEW_MESSAGE_BY_ID {offset}: {e}");
            not_found()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::broker::retry::testkit::*;
    use ferrocket_store::record::decode_records;

    fn query(b: &Broker, topic: &str, key: &str, unique: bool) -> RemotingCommand {
        let mut fields = vec![
            ("topic", topic),
            ("key", key),
            ("maxNum", "32"),
            ("beginTimestamp", "0"),
            ("endTimestamp", "9223372036854775807"),
        ];
        if unique {
            fields.push((UNIQUE_MSG_QUERY_FLAG, "true"));
        }
        query_message(&b.store, &b.conf(), &request(req::QUERY_MESSAGE, &fields))
    }

    #[test]
    fn query_by_key_returns_only_matching_records_zero_copy() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        put(
            &b.store,
            input(
                "QT",
                0,
                b"a",
                "KEYS\u{1}order-1 order-2\u{2}UNIQ_KEY\u{1}U-A\u{2}",
            ),
        );
        put(
            &b.store,
            input("QT", 1, b"b", "KEYS\u{1}order-2\u{2}UNIQ_KEY\u{1}U-B\u{2}"),
        );
        put(&b.store, input("Other", 0, b"c", "KEYS\u{1}order-2\u{2}"));
        put(&b.store, input("QT", 0, b"d", "KEYS\u{1}order-22\u{2}"));
        let r = query(&b, "QT", "order-2", false);
        assert_eq!(r.code, code::SUCCESS, "{:?}", r.remark);
        assert!(matches!(r.body, Body::Regions(_)));
        let bytes = body_bytes(&r);
        let mut bodies: Vec<Vec<u8>> = decode_records(&bytes)
            .unwrap()
            .iter()
            .map(|v| v.body.to_vec())
            .collect();
        bodies.sort();
        assert_eq!(bodies, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(r.ext_fields.contains_key("indexLastUpdateTimestamp"));
        assert!(r.ext_fields.contains_key("indexLastUpdatePhyoffset"));
        let r = query(&b, "QT", "order-1", false);
        assert_eq!(decode_records(&body_bytes(&r)).unwrap().len(), 1);
        // Unique-key query matches UNIQ_KEY only.
        let r = query(&b, "QT", "U-B", true);
        let recs = body_bytes(&r);
        let v = decode_records(&recs).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].body, b"b");
        let r = query(&b, "QT", "order-2", true);
        assert_eq!(r.code, code::QUERY_NOT_FOUND);
        // Nothing found.
        let r = query(&b, "QT", "nope", false);
        assert_eq!(r.code, code::QUERY_NOT_FOUND);
        assert_eq!(
            r.remark.as_deref(),
            Some("can not find message, maybe time range not correct")
        );
        // Hostile inputs answer, never panic.
        let r = query(&b, "../../x", &"k".repeat(10_000), false);
        assert_eq!(r.code, code::QUERY_NOT_FOUND);
        let r = query_message(
            &b.store,
            &b.conf(),
            &request(req::QUERY_MESSAGE, &[("topic", "QT")]),
        );
        assert_eq!(r.code, code::SYSTEM_ERROR);
        assert!(r.remark.unwrap().contains("key"));
    }

    #[test]
    fn view_by_offset_returns_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        put(&b.store, input("VT", 0, b"first", ""));
        let phy = put(&b.store, input("VT", 0, b"second", "TAGS\u{1}T\u{2}"));
        let off = phy.to_string();
        let r = view_message(
            &b.store,
            &request(req::VIEW_MESSAGE_BY_ID, &[("offset", &off)]),
        );
        assert_eq!(r.code, code::SUCCESS);
        let bytes = body_bytes(&r);
        let v = decode_records(&bytes).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].body, b"second");
        assert_eq!(v[0].phy_offset, i64::try_from(phy).unwrap());
        for bad in ["1", "-1", "999999999999", "x"] {
            let r = view_message(
                &b.store,
                &request(req::VIEW_MESSAGE_BY_ID, &[("offset", bad)]),
            );
            assert_eq!(r.code, code::SYSTEM_ERROR, "{bad}");
        }
        let r = view_message(
            &b.store,
            &request(req::VIEW_MESSAGE_BY_ID, &[("offset", "1")]),
        );
        assert_eq!(
            r.remark.as_deref(),
            Some("can not find message by the offset, 1")
        );
    }

    #[test]
    fn record_matching() {
        assert!(!record_matches(b"garbage", "T", "k", false));
        assert!(!record_matches(&[], "T", "k", true));
    }
}
