//! Message helpers for the send path: the batch body codec (§3.5), the property string
//! (`k\x01v\x02`), broker-generated UNIQ_KEYs and offset msgIds (§4.1).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
pub const PROPERTY_SEPARATOR: char = '\u{2}';
pub const PROPERTY_TAGS: &str = "TAGS";
pub const PROPERTY_KEYS: &str = "KEYS";
pub const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
pub const PROPERTY_CLUSTER: &str = "CLUSTER";
pub const PROPERTY_WAIT: &str = "WAIT";
pub const PROPERTY_DELAY: &str = "DELAY";
pub const PROPERTY_MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
pub const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";

/// Most messages one batch may carry.
pub const BATCH_MESSAGES_MAX: usize = 10_000;
/// Bytes of one inner batch record before its body and properties.
const BATCH_HEADER_BYTES: usize = 4 + 4 + 4 + 4 + 4;

/// One inner message of a batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    pub flag: i32,
    pub body: Vec<u8>,
    pub properties: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch record at byte {at} is truncated")]
    Truncated { at: usize },
    #[error("batch record at byte {at} has size {size} but its fields need {need}")]
    SizeMismatch { at: usize, size: i64, need: usize },
    #[error("batch record at byte {at} has negative length")]
    Negative { at: usize },
    #[error("batch record at byte {at} has properties that are not UTF-8")]
    Utf8 { at: usize },
    #[error("batch has more than {BATCH_MESSAGES_MAX} messages")]
    TooMany,
    #[error("batch is empty")]
    Empty,
}

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = buf.get(at..end)?.try_into().ok()?;
    Some(i32::from_be_bytes(b))
}

fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    let end = at.checked_add(2)?;
    let b: [u8; 2] = buf.get(at..end)?.try_into().ok()?;
    Some(i16::from_be_bytes(b))
}

/// One inner message of a batch body whose body is a slice of the request frame: the store's
/// copy into the log is then the only copy of the body (a 16 KiB body in a batch of 32 was
/// copied once more here, into its own `Vec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBatchItem {
    pub flag: i32,
    pub body: bytes::Bytes,
    pub properties: String,
}

/// Where one inner message's parts lie in the batch body.
struct BatchSpan {
    flag: i32,
    body: std::ops::Range<usize>,
    properties: String,
}

/// Checks a batch body and finds its messages:
/// `{ [int total][int magic][int crc][int flag][int bodyLen][body][short propLen][props] }*`.
fn scan_batch(body: &[u8]) -> Result<Vec<BatchSpan>, BatchError> {
    let mut items = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        if items.len() >= BATCH_MESSAGES_MAX {
            return Err(BatchError::TooMany);
        }
        let total = read_i32(body, at).ok_or(BatchError::Truncated { at })?;
        let flag = read_i32(body, at + 12).ok_or(BatchError::Truncated { at })?;
        let body_len = read_i32(body, at + 16).ok_or(BatchError::Truncated { at })?;
        let body_len = usize::try_from(body_len).map_err(|_| BatchError::Negative { at })?;
        let body_start = at + BATCH_HEADER_BYTES;
        let body_end = body_start
            .checked_add(body_len)
            .ok_or(BatchError::Truncated { at })?;
        if body_end > body.len() {
            return Err(BatchError::Truncated { at });
        }
        let prop_len = read_i16(body, body_end).ok_or(BatchError::Truncated { at })?;
        let prop_len = usize::try_from(prop_len).map_err(|_| BatchError::Negative { at })?;
        let props_start = body_end + 2;
        let props_end = props_start
            .checked_add(prop_len)
            .ok_or(BatchError::Truncated { at })?;
        let props = body
            .get(props_start..props_end)
            .ok_or(BatchError::Truncated { at })?;
        let need = props_end - at;
        if i64::from(total) != need as i64 {
            return Err(BatchError::SizeMismatch {
                at,
                size: i64::from(total),
                need,
            });
        }
        let properties = std::str::from_utf8(props)
            .map_err(|_| BatchError::Utf8 { at })?
            .to_string();
        items.push(BatchSpan {
            flag,
            body: body_start..body_end,
            properties,
        });
        at = props_end;
    }
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(items)
}

/// Splits a batch body into its messages, each body copied into its own `Vec` (tests, tools).
pub fn parse_batch(body: &[u8]) -> Result<Vec<BatchItem>, BatchError> {
    Ok(scan_batch(body)?
        .into_iter()
        .map(|s| BatchItem {
            flag: s.flag,
            body: body.get(s.body).unwrap_or_default().to_vec(),
            properties: s.properties,
        })
        .collect())
}

/// Splits a batch body into its messages, each body a slice of `body` (no copy; the broker's
/// send path). Accepts and refuses exactly what [`parse_batch`] does.
pub fn parse_batch_shared(body: &bytes::Bytes) -> Result<Vec<SharedBatchItem>, BatchError> {
    Ok(scan_batch(body)?
        .into_iter()
        .map(|s| SharedBatchItem {
            flag: s.flag,
            body: body.slice(s.body),
            properties: s.properties,
        })
        .collect())
}

/// Encodes a batch body (clients' layout, magic and CRC zero). Used by tests and tools.
pub fn encode_batch(items: &[BatchItem]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        items
            .iter()
            .map(|it| batch_item_len(it.body.len(), it.properties.len()))
            .sum(),
    );
    for it in items {
        push_batch_item(&mut out, it.flag, &it.body, &it.properties);
    }
    out
}

/// Bytes one inner message takes in a batch body.
pub fn batch_item_len(body_len: usize, properties_len: usize) -> usize {
    BATCH_HEADER_BYTES + body_len + 2 + properties_len
}

/// Appends one inner message to a batch body (magic and CRC zero, as clients send them).
pub fn push_batch_item(out: &mut Vec<u8>, flag: i32, body: &[u8], properties: &str) {
    let total = batch_item_len(body.len(), properties.len());
    out.extend_from_slice(&(total as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&flag.to_be_bytes());
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&(properties.len() as i16).to_be_bytes());
    out.extend_from_slice(properties.as_bytes());
}

/// Java's property parsing: segments split on U+0002, name up to the first U+0001, both
/// non-empty.
pub fn properties(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(PROPERTY_SEPARATOR).filter_map(|seg| {
        let (k, v) = seg.split_once(NAME_VALUE_SEPARATOR)?;
        (!k.is_empty() && !v.is_empty()).then_some((k, v))
    })
}

/// The value of property `key`, if present (the first pair with that name and a value, as
/// [`properties`] gives them).
pub fn property<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    find_property(s, key, false)
}

/// The value of the first (`last` false) or last pair named `key` with a non-empty value, by
/// Java's rules (segments split on U+0002, the name up to the first U+0001). One pass that
/// compares each segment's start with the name, instead of splitting every pair: the send path
/// looks up four properties per message (~5k instructions with the split iterators).
pub fn find_property<'a>(s: &'a str, key: &str, last: bool) -> Option<&'a str> {
    let k = key.as_bytes();
    if k.is_empty() || k.iter().any(|&b| b == 1 || b == 2) {
        // Not a name Java could store; the general parser gives the exact answer.
        let mut pairs = s
            .split(PROPERTY_SEPARATOR)
            .filter_map(|seg| seg.split_once(NAME_VALUE_SEPARATOR))
            .filter(|(n, v)| *n == key && !n.is_empty() && !v.is_empty());
        return if last {
            pairs.next_back()
        } else {
            pairs.next()
        }
        .map(|(_, v)| v);
    }
    let mut found = None;
    let mut start = 0;
    loop {
        let rest = s.get(start..)?;
        let end = rest.find(PROPERTY_SEPARATOR).map_or(s.len(), |i| start + i);
        let seg = s.as_bytes().get(start..end).unwrap_or_default();
        // The name is `key` when the segment starts with it followed by U+0001 (the name has
        // no U+0001, so that is the first one).
        if seg.len() > k.len() + 1 && seg.starts_with(k) && seg.get(k.len()) == Some(&1) {
            let value = s.get(start + k.len() + 1..end);
            if !last {
                return value;
            }
            found = value;
        }
        if end >= s.len() {
            return found;
        }
        start = end + 1;
    }
}

/// What the send path looks up in a message's properties, found by [`scan_send_properties`].
/// Each value is what [`property`] (the first pair) or `schedule::prop_get` (the last pair)
/// gives for that name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendProperties<'a> {
    /// First `UNIQ_KEY` (the reply's transactionId; added by the broker when absent).
    pub uniq_key: Option<&'a str>,
    /// First `CLUSTER` (added by the broker when absent).
    pub cluster: Option<&'a str>,
    /// Last `DELAY` (the delay level; Java's property map keeps the last).
    pub delay: Option<&'a str>,
}

/// The send path's three property lookups in one pass over the segments. Three scans (two
/// with [`property`], one with `prop_get` for DELAY, each through `str::find`) were ~2k
/// instructions per 128 B send (callgrind, 2026-11-22). Segments and names follow Java's rules
/// exactly as [`find_property`] does: split on U+0002, the name up to the first U+0001, a pair
/// counts only with a non-empty name and value (`send_properties_scan_matches_the_lookups`).
pub fn scan_send_properties(s: &str) -> SendProperties<'_> {
    let mut found = SendProperties::default();
    let b = s.as_bytes();
    let mut start = 0;
    while start <= b.len() {
        let seg = b.get(start..).unwrap_or_default();
        // The segment ends at the next U+0002; its name at its first U+0001.
        let mut name_len = None;
        let mut len = seg.len();
        for (i, &c) in seg.iter().enumerate() {
            if c == 2 {
                len = i;
                break;
            }
            if c == 1 && name_len.is_none() {
                name_len = Some(i);
            }
        }
        if let Some(n) = name_len.filter(|&n| n > 0 && n + 1 < len) {
            // Both ends are at ASCII separators of valid UTF-8: character boundaries.
            let value = s.get(start + n + 1..start + len);
            match seg.get(..n).unwrap_or_default() {
                b"UNIQ_KEY" if found.uniq_key.is_none() => found.uniq_key = value,
                b"CLUSTER" if found.cluster.is_none() => found.cluster = value,
                b"DELAY" => found.delay = value,
                _ => {}
            }
        }
        start += len + 1;
    }
    found
}

/// Appends `key=value` (Java's encoder writes a trailing separator after every pair).
pub fn push_property(s: &mut String, key: &str, value: &str) {
    if !s.is_empty() && !s.ends_with(PROPERTY_SEPARATOR) {
        s.push(PROPERTY_SEPARATOR);
    }
    s.push_str(key);
    s.push(NAME_VALUE_SEPARATOR);
    s.push_str(value);
    s.push(PROPERTY_SEPARATOR);
}

/// Removes property `key` (all occurrences).
pub fn remove_property(s: &str, key: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (k, v) in properties(s) {
        if k != key {
            push_property(&mut out, k, v);
        }
    }
    out
}

/// Uppercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Appends `bytes` as upper-case hex digits.
fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for b in bytes {
        s.push(char::from(
            DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
        ));
        s.push(char::from(
            DIGITS.get(usize::from(b & 0xF)).copied().unwrap_or(b'0'),
        ));
    }
}

/// The offset msgId (§4.1): hex(storeHost IP, port as int32, commitlog offset as int64).
pub fn offset_msg_id(store_host: SocketAddr, phy_offset: u64) -> String {
    let port = i32::from(store_host.port()).to_be_bytes();
    let offset = phy_offset.to_be_bytes();
    match store_host.ip() {
        IpAddr::V4(a) => {
            // Every send's reply carries one: the 16 bytes go through a byte buffer (one pass,
            // one allocation) instead of 32 `String::push` calls (~475 instructions per send,
            // callgrind, 2026-11-22).
            let mut raw = [0u8; 16];
            let parts = a.octets().into_iter().chain(port).chain(offset);
            raw.iter_mut().zip(parts).for_each(|(r, b)| *r = b);
            hex_of_16(&raw)
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity((16 + 12) * 2);
            push_hex(&mut s, &a.octets());
            push_hex(&mut s, &port);
            push_hex(&mut s, &offset);
            s
        }
    }
}

/// Upper-case hex of 16 bytes, what [`hex`] gives.
fn hex_of_16(raw: &[u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = [0u8; 32];
    for (pair, b) in out.chunks_exact_mut(2).zip(raw) {
        if let [hi, lo] = pair {
            *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = DIGITS.get(usize::from(b & 0xF)).copied().unwrap_or(b'0');
        }
    }
    // Hex digits are ASCII: this cannot fail.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

static UNIQ_COUNTER: AtomicU16 = AtomicU16::new(0);

/// Length of a [`new_uniq_key`]: 16 bytes in hex.
pub const UNIQ_KEY_HEX_LEN: usize = 32;

/// A UNIQ_KEY in the client layout (§4.2): ip(4) pid(2) process tag(4) ms(4) counter(2).
/// Treated as opaque by everyone; only uniqueness matters.
pub fn new_uniq_key(ip: IpAddr, now_ms: i64) -> String {
    let ip4 = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(|v| v.octets()).unwrap_or([0; 4]),
    };
    let mut s = String::with_capacity(UNIQ_KEY_HEX_LEN);
    push_hex(&mut s, &ip4);
    push_hex(&mut s, &(std::process::id() as u16).to_be_bytes());
    push_hex(&mut s, &0x4652_4F43u32.to_be_bytes()); // "FROC": marks broker-made ids
    push_hex(&mut s, &(now_ms as u32).to_be_bytes());
    push_hex(
        &mut s,
        &UNIQ_COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes(),
    );
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass lookup answers what the split-every-pair definitions answer: the first
        /// pair (`property`) and the last pair (`prop_get`) with that name and a value.
        #[test]
        fn find_property_matches_the_split_definitions(
            parts in proptest::collection::vec(
                prop_oneof![Just("K"), Just("KEY"), Just("KE"), Just("v"), Just("\u{1}"),
                    Just("\u{2}"), Just("é")], 0..24),
            key in prop_oneof![Just("K"), Just("KEY"), Just("KE"), Just(""), Just("K\u{1}"),
                Just("é")],
        ) {
            let s: String = parts.concat();
            let first = properties(&s).find(|(k, _)| *k == key).map(|(_, v)| v);
            prop_assert_eq!(property(&s, key), first);
            let last = s
                .split(PROPERTY_SEPARATOR)
                .rev()
                .filter_map(|seg| seg.split_once(NAME_VALUE_SEPARATOR))
                .find(|(k, v)| *k == key && !v.is_empty())
                .map(|(_, v)| v);
            prop_assert_eq!(crate::broker::schedule::prop_get(&s, key), last);
        }
    }

    proptest! {
        /// The one-pass scan of the send path finds what the three lookups it replaces find.
        #[test]
        fn send_properties_scan_matches_the_lookups(
            parts in proptest::collection::vec(
                prop_oneof![Just("UNIQ_KEY"), Just("CLUSTER"), Just("DELAY"), Just("DELAYX"),
                    Just("UNIQ"), Just("v"), Just("3"), Just(" 2 "), Just("\u{1}"),
                    Just("\u{2}"), Just("é"), Just("")], 0..24),
        ) {
            let s: String = parts.concat();
            let got = scan_send_properties(&s);
            prop_assert_eq!(got.uniq_key, property(&s, PROPERTY_UNIQ_KEY));
            prop_assert_eq!(got.cluster, property(&s, PROPERTY_CLUSTER));
            prop_assert_eq!(got.delay, crate::broker::schedule::prop_get(&s,
                crate::broker::schedule::PROPERTY_DELAY_TIME_LEVEL));
        }
    }

    #[test]
    fn send_properties_scan_examples() {
        let s =
            "UNIQ_KEY\u{1}U1\u{2}DELAY\u{1}3\u{2}CLUSTER\u{1}C\u{2}UNIQ_KEY\u{1}U2\u{2}DELAY\u{1}4";
        let got = scan_send_properties(s);
        assert_eq!(got.uniq_key, Some("U1"));
        assert_eq!(got.cluster, Some("C"));
        assert_eq!(got.delay, Some("4"));
        assert_eq!(scan_send_properties(""), SendProperties::default());
        let empty =
            scan_send_properties("UNIQ_KEY\u{1}\u{2}\u{1}x\u{2}CLUSTER\u{2}DELAY\u{1}\u{1}");
        assert_eq!(empty.uniq_key, None);
        assert_eq!(empty.cluster, None);
        assert_eq!(empty.delay, Some("\u{1}"));
    }

    #[test]
    fn offset_msg_id_vector() {
        let h: SocketAddr = "192.168.0.1:10911".parse().unwrap();
        assert_eq!(offset_msg_id(h, 0x1234), "C0A8000100002A9F0000000000001234");
        let v6: SocketAddr = "[::1]:10911".parse().unwrap();
        assert_eq!(
            offset_msg_id(v6, 0x1234),
            "0000000000000000000000000000000100002A9F0000000000001234"
        );
    }

    proptest! {
        /// The one-buffer hex of an IPv4 offset msgId is the byte-by-byte hex of its parts.
        #[test]
        fn offset_msg_id_is_the_hex_of_its_parts(ip in any::<[u8; 4]>(), port in any::<u16>(),
                                                 off in any::<u64>()) {
            let host = SocketAddr::new(IpAddr::from(ip), port);
            let mut raw = ip.to_vec();
            raw.extend_from_slice(&i32::from(port).to_be_bytes());
            raw.extend_from_slice(&off.to_be_bytes());
            prop_assert_eq!(offset_msg_id(host, off), hex(&raw));
        }
    }

    #[test]
    fn batch_round_trip_and_errors() {
        let items = vec![
            BatchItem {
                flag: 1,
                body: b"hello".to_vec(),
                properties: "UNIQ_KEY\u{1}A\u{2}".into(),
            },
            BatchItem {
                flag: 0,
                body: vec![],
                properties: String::new(),
            },
        ];
        let enc = encode_batch(&items);
        assert_eq!(parse_batch(&enc).unwrap(), items);
        let shared = parse_batch_shared(&bytes::Bytes::from(enc.clone())).unwrap();
        assert_eq!(shared.len(), 2);
        assert_eq!(&shared[0].body[..], b"hello");
        assert_eq!(shared[0].properties, items[0].properties);
        assert_eq!((shared[1].flag, shared[1].body.len()), (0, 0));
        assert_eq!(parse_batch(&[]), Err(BatchError::Empty));
        assert!(matches!(
            parse_batch(&enc[..enc.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut bad = enc.clone();
        bad[3] ^= 1;
        assert!(matches!(
            parse_batch(&bad),
            Err(BatchError::SizeMismatch { .. })
        ));
        let mut neg = enc;
        neg[16] = 0xff;
        assert!(matches!(
            parse_batch(&neg),
            Err(BatchError::Negative { .. })
        ));
    }

    proptest! {
        #[test]
        fn batch_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_batch(&bytes);
        }

        /// The zero-copy parser accepts, refuses and splits exactly like the copying one.
        #[test]
        fn shared_parse_agrees_with_copying_parse(
            msgs in proptest::collection::vec((any::<i32>(), proptest::collection::vec(any::<u8>(), 0..64), "[a-zA-Z0-9]{0,20}"), 1..8),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            mangle in 0u8..3,
        ) {
            let items: Vec<BatchItem> = msgs.into_iter().map(|(flag, body, p)| BatchItem { flag, body, properties: p }).collect();
            let mut enc = encode_batch(&items);
            match mangle {
                1 => enc.truncate(cut.index(enc.len() + 1)),
                2 => { let i = flip.index(enc.len()); enc[i] ^= 0x80; }
                _ => {}
            }
            let copied = parse_batch(&enc);
            let shared = parse_batch_shared(&bytes::Bytes::from(enc));
            match (copied, shared) {
                (Ok(c), Ok(s)) => {
                    prop_assert_eq!(c.len(), s.len());
                    for (c, s) in c.iter().zip(&s) {
                        prop_assert_eq!(c.flag, s.flag);
                        prop_assert_eq!(&c.body[..], &s.body[..]);
                        prop_assert_eq!(&c.properties, &s.properties);
                    }
                }
                (Err(c), Err(s)) => prop_assert_eq!(c, s),
                (c, s) => prop_assert!(false, "copying {:?} vs shared {:?}", c, s),
            }
        }

        #[test]
        fn batch_round_trips(msgs in proptest::collection::vec((any::<i32>(), proptest::collection::vec(any::<u8>(), 0..64), "[a-zA-Z0-9]{0,20}"), 1..8)) {
            let items: Vec<BatchItem> = msgs.into_iter().map(|(flag, body, p)| BatchItem { flag, body, properties: p }).collect();
            prop_assert_eq!(parse_batch(&encode_batch(&items)).unwrap(), items);
        }
    }

    #[test]
    fn property_helpers_follow_java_parsing() {
        let mut s = String::from("TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}bad\u{2}\u{1}x\u{2}");
        assert_eq!(property(&s, "TAGS"), Some("TagA"));
        assert_eq!(property(&s, "KEYS"), Some("k1 k2"));
        assert_eq!(property(&s, "bad"), None);
        push_property(&mut s, "CLUSTER", "c");
        assert_eq!(property(&s, "CLUSTER"), Some("c"));
        let mut t = String::from("A\u{1}b"); // no trailing separator
        push_property(&mut t, "C", "d");
        assert_eq!(t, "A\u{1}b\u{2}C\u{1}d\u{2}");
        assert_eq!(remove_property(&t, "A"), "C\u{1}d\u{2}");
    }

    #[test]
    fn uniq_keys_are_32_hex_and_distinct() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = new_uniq_key(ip, 5);
        let b = new_uniq_key(ip, 5);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
