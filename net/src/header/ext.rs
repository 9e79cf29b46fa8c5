//! `ExtFields`: a command's custom header fields (extFields), name → value as text.
//!
//! A small ordered map with lookup by name. Headers carry a handful of fields (a send ~13, a
//! reply ~6), so a linear scan beats hashing; and the keys and values a decoded JSON header
//! carries stay where they are: ranges of one shared copy of the header text, instead of one
//! `String` allocation each. Fields built by hand (typed headers' `to_ext`, handlers) own their
//! text, or borrow a `&'static` key. The `HashMap<String, String>` this replaces cost ~10k
//! instructions per request in allocation and SipHash (callgrind, 2026-11-21).
//!
//! Keys are unique: `insert` replaces the value of an existing key (last one wins, like the map
//! it replaces and like Java's `HashMap`). Equality ignores order.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Where the text of one key or value lives.
#[derive(Clone)]
enum Text {
    /// `src[at..at + len]` of the fields' shared header text.
    Shared {
        at: u32,
        len: u32,
    },
    Static(&'static str),
    Owned(String),
}

/// A command's extFields. See the module doc.
#[derive(Clone, Default)]
pub struct ExtFields {
    /// The decoded header's text that `Text::Shared` ranges point into.
    src: Option<Arc<str>>,
    entries: Vec<(Text, Text)>,
}

/// Above this many entries, bulk building dedupes with a hash map instead of a scan per entry
/// (a hostile header may carry up to `EXT_FIELDS_MAX`).
const LINEAR_DEDUP_MAX: usize = 32;

impl ExtFields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        ExtFields {
            src: None,
            entries: Vec::with_capacity(n),
        }
    }

    /// Fields whose `Shared` text points into `src` (the JSON decoder's fast path).
    pub(crate) fn shared(src: Arc<str>, capacity: usize) -> Self {
        ExtFields {
            src: Some(src),
            entries: Vec::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::Shared { at, len } => {
                let (at, len) = (*at as usize, *len as usize);
                self.src
                    .as_deref()
                    .and_then(|s| s.get(at..at + len))
                    .unwrap_or("")
            }
            Text::Static(s) => s,
            Text::Owned(s) => s,
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(k, _)| self.text(k).as_bytes() == key.as_bytes())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let (_, v) = self.entries.get(self.position(key)?)?;
        Some(self.text(v))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: String, value: String) {
        self.set(Text::Owned(key), Text::Owned(value));
    }

    /// `insert` with a key that needs no allocation.
    pub fn insert_static(&mut self, key: &'static str, value: String) {
        self.set(Text::Static(key), Text::Owned(value));
    }

    fn set(&mut self, key: Text, value: Text) {
        let k = self.text(&key);
        match self.position(k) {
            Some(i) => {
                if let Some(slot) = self.entries.get_mut(i) {
                    slot.1 = value;
                }
            }
            None => self.entries.push((key, value)),
        }
    }

    /// The JSON fast path's insert: ranges of `src`, static text or owned text (escapes).
    /// Callers keep the entry count small (the fast path stops at 64), so the scan for an
    /// earlier equal key stays cheap.
    pub(crate) fn set_parts(&mut self, key: TextPart, value: TextPart) {
        self.set(key.0, value.0);
    }

    /// The bytes of a key part, as `set_parts` would store it (for the decoder's duplicate
    /// filter).
    pub(crate) fn part_bytes<'a>(&'a self, part: &'a TextPart) -> &'a [u8] {
        self.text(&part.0).as_bytes()
    }

    /// `set_parts` for a key the caller knows is not present yet.
    #[inline]
    pub(crate) fn push_parts_unique(&mut self, key: TextPart, value: TextPart) {
        self.entries.push((key.0, value.0));
    }

    /// Appends a key the caller knows is not present yet (typed headers' distinct keys).
    pub(crate) fn push_static_unique(&mut self, key: &'static str, value: String) {
        debug_assert!(!self.contains_key(key));
        self.entries.push((Text::Static(key), Text::Owned(value)));
    }

    /// The keys in insertion order (positions for [`ExtFields::value_at`]).
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(move |(k, _)| self.text(k))
    }

    /// The value of entry `at` (a position from [`ExtFields::keys`]).
    pub fn value_at(&self, at: usize) -> Option<&str> {
        self.entries.get(at).map(|(_, v)| self.text(v))
    }

    /// The bytes of each key in insertion order (positions for [`ExtFields::value_at`]),
    /// without the character-boundary checks of [`ExtFields::keys`], for matching against
    /// known names. A key whose stored range is not valid comes out empty, as from `keys`.
    pub(crate) fn key_bytes(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries
            .iter()
            .map(|(k, _)| self.text_bytes(k).unwrap_or_default())
    }

    /// The bytes of entry `at`'s value, without the character-boundary checks `value_at` makes
    /// (for parsers of ASCII text, e.g. integers); `None` where `value_at` would not give the
    /// text as stored.
    pub(crate) fn value_bytes_at(&self, at: usize) -> Option<&[u8]> {
        let (_, v) = self.entries.get(at)?;
        self.text_bytes(v)
    }

    /// The bytes of `t` as stored (no character-boundary check); `None` for a shared range
    /// the source does not hold.
    fn text_bytes<'a>(&'a self, t: &'a Text) -> Option<&'a [u8]> {
        match t {
            Text::Shared { at, len } => {
                let (at, len) = (*at as usize, *len as usize);
                self.src.as_deref()?.as_bytes().get(at..at + len)
            }
            Text::Static(s) => Some(s.as_bytes()),
            Text::Owned(s) => Some(s.as_bytes()),
        }
    }

    /// Moves out the value of entry `at` when the fields own it (text that had JSON escapes,
    /// or was inserted by hand), leaving it empty; `None` for text that is shared or static,
    /// which the caller copies. Used by typed headers' `from_ext_owned`.
    pub(crate) fn take_owned_value(&mut self, at: usize) -> Option<String> {
        match self.entries.get_mut(at) {
            Some((_, Text::Owned(s))) => Some(std::mem::take(s)),
            _ => None,
        }
    }

    /// `push_static_unique` of an integer's decimal text; the small values headers mostly
    /// carry (flags, queue ids, counts) as static text, without allocating.
    pub(crate) fn push_static_int(&mut self, key: &'static str, v: i64) {
        const SMALL: [&str; 16] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
        ];
        debug_assert!(!self.contains_key(key));
        let text = match usize::try_from(v).ok().and_then(|i| SMALL.get(i)) {
            Some(s) => Text::Static(s),
            None => Text::Owned(itoa::Buffer::new().format(v).to_owned()),
        };
        self.entries.push((Text::Static(key), text));
    }

    /// `push_static_unique` of static text (booleans).
    pub(crate) fn push_static_static(&mut self, key: &'static str, value: &'static str) {
        debug_assert!(!self.contains_key(key));
        self.entries.push((Text::Static(key), Text::Static(value)));
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key)?;
        let (_, v) = self.entries.remove(i);
        Some(match v {
            Text::Owned(s) => s,
            other => self.text(&other).to_owned(),
        })
    }

    /// The fields in insertion order (first occurrence of each key).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(move |(k, v)| (self.text(k), self.text(v)))
    }

    /// The fields sorted by key (the order both header encodings write).
    pub fn sorted(&self) -> Vec<(&str, &str)> {
        let mut all: Vec<(&str, &str)> = self.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// Calls `f` on the fields sorted by key, without allocating for the usual handful of
    /// fields (the JSON encoder runs this once per reply).
    pub fn for_each_sorted(&self, mut f: impl FnMut(&str, &str)) {
        // Typed headers push their fields in declaration order, which for the hot ones (a
        // send's one-letter keys, the send reply) is already sorted: check that first, on
        // first bytes where they differ, and walk the entries as they are.
        let mut keys = self.entries.iter().map(|(k, _)| self.text(k).as_bytes());
        let mut sorted = true;
        if let Some(mut prev) = keys.next() {
            for k in keys {
                let ordered = match (prev.first(), k.first()) {
                    (Some(a), Some(b)) if a != b => a < b,
                    _ => prev <= k,
                };
                if !ordered {
                    sorted = false;
                    break;
                }
                prev = k;
            }
        }
        if sorted {
            self.entries
                .iter()
                .for_each(|(k, v)| f(self.text(k), self.text(v)));
            return;
        }
        const ON_STACK_MAX: usize = 16;
        if self.entries.len() > ON_STACK_MAX {
            self.sorted().into_iter().for_each(|(k, v)| f(k, v));
            return;
        }
        let mut order: [(&str, &str); ON_STACK_MAX] = [("", ""); ON_STACK_MAX];
        let mut n = 0;
        for (k, v) in self.iter() {
            // Insertion sort: a few entries, often already in order.
            let mut at = n;
            while at > 0 && order.get(at - 1).is_some_and(|(pk, _)| *pk > k) {
                order.swap(at - 1, at);
                at -= 1;
            }
            if let Some(slot) = order.get_mut(at) {
                *slot = (k, v);
            }
            n += 1;
        }
        order.iter().take(n).for_each(|(k, v)| f(k, v));
    }

    /// Builds from pairs, later pairs replacing earlier ones with the same key, in time linear
    /// in the number of pairs whatever their count.
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        if pairs.len() <= LINEAR_DEDUP_MAX {
            let mut out = Self::with_capacity(pairs.len());
            for (k, v) in pairs {
                out.insert(k, v);
            }
            return out;
        }
        let mut at: HashMap<String, usize> = HashMap::with_capacity(pairs.len());
        let mut out = Self::with_capacity(pairs.len());
        for (k, v) in pairs {
            match at.get(&k) {
                Some(&i) => {
                    if let Some(slot) = out.entries.get_mut(i) {
                        slot.1 = Text::Owned(v);
                    }
                }
                None => {
                    at.insert(k.clone(), out.entries.len());
                    out.entries.push((Text::Owned(k), Text::Owned(v)));
                }
            }
        }
        out
    }
}

/// One key or value for [`ExtFields::set_parts`].
pub(crate) struct TextPart(Text);

impl TextPart {
    /// `src[at..at + len]` of the fields' shared text (the caller checked the bounds and that
    /// they fall on character boundaries: between ASCII quotes of a valid UTF-8 header).
    pub(crate) fn shared(at: usize, len: usize) -> Option<Self> {
        Some(TextPart(Text::Shared {
            at: u32::try_from(at).ok()?,
            len: u32::try_from(len).ok()?,
        }))
    }
    /// The length of a `shared` part's text; `None` for other parts.
    pub(crate) fn shared_len(&self) -> Option<usize> {
        match self.0 {
            Text::Shared { len, .. } => Some(len as usize),
            _ => None,
        }
    }
    pub(crate) fn fixed(s: &'static str) -> Self {
        TextPart(Text::Static(s))
    }
    pub(crate) fn owned(s: String) -> Self {
        TextPart(Text::Owned(s))
    }
}

impl std::ops::Index<&str> for ExtFields {
    type Output = str;
    /// The value of `key`; panics when it is absent (tests and tools).
    fn index(&self, key: &str) -> &str {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no extFields entry {key:?}"),
        }
    }
}

impl PartialEq for ExtFields {
    /// Same keys with the same values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_pairs(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for ExtFields {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k.into(), v.into());
        }
    }
}

impl From<HashMap<String, String>> for ExtFields {
    fn from(m: HashMap<String, String>) -> Self {
        let mut out = Self::with_capacity(m.len());
        // Map keys are unique already.
        out.entries = m
            .into_iter()
            .map(|(k, v)| (Text::Owned(k), Text::Owned(v)))
            .collect();
        out
    }
}

impl From<ExtFields> for HashMap<String, String> {
    fn from(e: ExtFields) -> Self {
        e.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shared_static_and_owned_text_read_alike() {
        let src: Arc<str> = Arc::from(r#"{"k":"value"}"#);
        let mut e = ExtFields::shared(src, 4);
        e.set_parts(
            TextPart::shared(2, 1).unwrap(),
            TextPart::shared(6, 5).unwrap(),
        );
        e.set_parts(TextPart::fixed("t"), TextPart::fixed("true"));
        e.insert("o".into(), "x".into());
        assert_eq!(e.get("k"), Some("value"));
        assert_eq!(e.get("t"), Some("true"));
        assert_eq!(&e["o"], "x");
        assert_eq!(e.get("value"), None);
        // A later value replaces the earlier one, whatever the representation.
        e.insert("k".into(), "new".into());
        assert_eq!(e.len(), 3);
        assert_eq!(e.get("k"), Some("new"));
        assert_eq!(e.remove("t"), Some("true".to_owned()));
        assert!(!e.contains_key("t"));
        assert_eq!(e.sorted(), vec![("k", "new"), ("o", "x")]);
        let mut seen = Vec::new();
        e.for_each_sorted(|k, v| seen.push((k.to_owned(), v.to_owned())));
        assert_eq!(
            seen,
            vec![("k".into(), "new".into()), ("o".into(), "x".into())]
        );
    }

    proptest! {
        /// Integers (static text when small) and static booleans read back as their text.
        #[test]
        fn pushed_integers_read_as_their_text(
            v in prop_oneof![any::<i64>(), -2i64..20],
            b in any::<bool>(),
        ) {
            let mut e = ExtFields::new();
            e.push_static_int("n", v);
            e.push_static_static("b", if b { "true" } else { "false" });
            let n = v.to_string();
            prop_assert_eq!(e.get("n"), Some(n.as_str()));
            prop_assert_eq!(e.get("b"), Some(if b { "true" } else { "false" }));
            prop_assert_eq!(e.remove("n"), Some(n));
        }
    }

    #[test]
    fn equality_ignores_order() {
        let a: ExtFields = [("a", "1"), ("b", "2")].into_iter().collect();
        let b: ExtFields = [("b", "2"), ("a", "1")].into_iter().collect();
        let c: ExtFields = [("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, ExtFields::new());
    }

    proptest! {
        /// Behaves like the `HashMap` it replaces, for any sequence of inserts and removes,
        /// built one by one or in bulk (both dedupe paths).
        #[test]
        fn behaves_like_a_hash_map(
            ops in proptest::collection::vec((0u8..48, "[a-c]{0,2}", any::<bool>()), 0..120)
        ) {
            let mut model: HashMap<String, String> = HashMap::new();
            let mut e = ExtFields::new();
            let mut pairs = Vec::new();
            for (k, v, remove) in &ops {
                let k = format!("k{k}");
                if *remove {
                    prop_assert_eq!(e.remove(&k), model.remove(&k));
                } else {
                    e.insert(k.clone(), v.clone());
                    model.insert(k.clone(), v.clone());
                    pairs.push((k, v.clone()));
                }
                prop_assert_eq!(e.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(e.get(k), Some(v.as_str()));
            }
            prop_assert_eq!(HashMap::from(e.clone()), model.clone());
            let mut walked = Vec::new();
            e.for_each_sorted(|k, v| walked.push((k.to_owned(), v.to_owned())));
            let want: Vec<(String, String)> =
                e.sorted().into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            prop_assert_eq!(walked, want);
            let bulk: ExtFields = pairs.iter().cloned().collect();
            let mut bulk_model = HashMap::new();
            for (k, v) in pairs {
                bulk_model.insert(k, v);
            }
            prop_assert_eq!(HashMap::from(bulk.clone()), bulk_model.clone());
            prop_assert_eq!(bulk, ExtFields::from(bulk_model));
        }
    }
}
