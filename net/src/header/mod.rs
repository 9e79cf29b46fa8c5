//! Headers: the two wire encodings (json, binary), the code tables, and typed "custom headers"
//! that travel as extFields (Java field name → value as text).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Result, WireError};

pub mod admin;
pub mod binary;
pub mod codes;
pub mod consumer;
pub mod ext;
pub mod json;
pub mod namesrv;
#[cfg(test)]
mod probe;
pub mod producer;

pub use admin::*;
pub use codes::{RequestCode, ResponseCode};
pub use consumer::*;
pub use ext::ExtFields;
pub use namesrv::*;
pub use producer::*;

/// A typed custom header: decoded from and encoded to extFields. Every header type also has
/// inherent `from_ext`/`to_ext` so callers need not import this trait.
pub trait CommandHeader: Sized {
    /// Parses the fields; a missing required field or an unparsable value is an error naming
    /// the field's wire key.
    fn from_ext(ext: &ExtFields) -> Result<Self>;
    /// All fields as strings; optional fields that are `None` are left out.
    fn to_ext(&self) -> ExtFields;
}

/// A value type a header field can have, with RocketMQ's text form.
pub trait ExtValue: Sized {
    /// What the error says was expected.
    const EXPECTED: &'static str;
    /// Strings keep an empty value; other types treat `""` in an optional field as absent.
    const IS_STRING: bool = false;
    fn parse(s: &str) -> Option<Self>;
    /// `parse` on a string the caller gives up (strings keep it: no copy).
    fn from_string(s: String) -> Option<Self> {
        Self::parse(&s)
    }
    fn format(&self) -> String;
    /// `format` on a value the caller gives up (strings are moved, not copied).
    fn into_text(self) -> String {
        self.format()
    }
    /// Appends the value as `key` to fields that do not have it yet (typed headers'
    /// `into_ext`); numbers and booleans without allocating.
    fn push_into(self, ext: &mut ExtFields, key: &'static str) {
        ext.push_static_unique(key, self.into_text());
    }
}

impl ExtValue for String {
    const EXPECTED: &'static str = "a string";
    const IS_STRING: bool = true;
    fn parse(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn from_string(s: String) -> Option<Self> {
        Some(s)
    }
    fn format(&self) -> String {
        self.clone()
    }
    fn into_text(self) -> String {
        self
    }
}

/// Text that is often a constant (a send reply's `TRACE_ON`, the default `MSG_REGION`): a
/// borrowed value goes into the fields as static text, without the allocation and copy a
/// `String` costs per reply. Decoding always gives `Owned`.
impl ExtValue for std::borrow::Cow<'static, str> {
    const EXPECTED: &'static str = "a string";
    const IS_STRING: bool = true;
    fn parse(s: &str) -> Option<Self> {
        Some(std::borrow::Cow::Owned(s.to_owned()))
    }
    fn from_string(s: String) -> Option<Self> {
        Some(std::borrow::Cow::Owned(s))
    }
    fn format(&self) -> String {
        self.as_ref().to_owned()
    }
    fn into_text(self) -> String {
        self.into_owned()
    }
    fn push_into(self, ext: &mut ExtFields, key: &'static str) {
        match self {
            std::borrow::Cow::Borrowed(s) => ext.push_static_static(key, s),
            std::borrow::Cow::Owned(s) => ext.push_static_unique(key, s),
        }
    }
}

/// Decimal text of `v` without the formatting machinery (headers format a few integers per
/// request).
fn int_string(v: i64) -> String {
    itoa::Buffer::new().format(v).to_owned()
}

/// Integers: decimal, optional sign, surrounding spaces tolerated. A JSON number that carried a
/// fraction of zero (`"4.0"`) is accepted too, since some JSON writers emit integers that way.
///
/// The text every client sends (`-?[0-9]{1,18}`) is converted in one pass here; anything else
/// goes to [`parse_int_general`], which defines the accepted forms. (`trim` + `str::parse` cost
/// ~80 instructions per field, six integer fields per send header.)
fn parse_int<T: std::str::FromStr + TryFrom<i64>>(s: &str) -> Option<T> {
    match parse_plain_int(s.as_bytes()) {
        Some(v) => T::try_from(v).ok(),
        None => parse_int_general(s),
    }
}

/// `-?[0-9]{1,18}` as an i64 (18 digits cannot overflow); `None` for any other text.
fn parse_plain_int(b: &[u8]) -> Option<i64> {
    const DIGITS_MAX: usize = 18;
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > DIGITS_MAX {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(if neg { -v } else { v })
}

/// The general integer parser behind [`parse_int`] (and its reference in tests).
fn parse_int_general<T: std::str::FromStr + TryFrom<i64>>(s: &str) -> Option<T> {
    let s = s.trim();
    if let Ok(v) = s.parse::<T>() {
        return Some(v);
    }
    let (int, frac) = s.split_once('.')?;
    if !frac.is_empty() && frac.bytes().all(|b| b == b'0') {
        return T::try_from(int.parse::<i64>().ok()?).ok();
    }
    None
}

impl ExtValue for i32 {
    const EXPECTED: &'static str = "a 32-bit integer";
    fn parse(s: &str) -> Option<Self> {
        parse_int(s)
    }
    fn push_into(self, ext: &mut ExtFields, key: &'static str) {
        ext.push_static_int(key, i64::from(self));
    }
    fn format(&self) -> String {
        int_string(i64::from(*self))
    }
}

impl ExtValue for i64 {
    const EXPECTED: &'static str = "a 64-bit integer";
    fn parse(s: &str) -> Option<Self> {
        parse_int(s)
    }
    fn push_into(self, ext: &mut ExtFields, key: &'static str) {
        ext.push_static_int(key, self);
    }
    fn format(&self) -> String {
        int_string(*self)
    }
}

impl ExtValue for bool {
    const EXPECTED: &'static str = "true/false or 1/0";
    fn parse(s: &str) -> Option<Self> {
        // What clients send, before the tolerant forms.
        match s {
            "true" => return Some(true),
            "false" => return Some(false),
            _ => {}
        }
        let s = s.trim();
        if s.eq_ignore_ascii_case("true") || s == "1" {
            Some(true)
        } else if s.eq_ignore_ascii_case("false") || s == "0" {
            Some(false)
        } else {
            None
        }
    }
    fn format(&self) -> String {
        if *self { "true" } else { "false" }.to_owned()
    }
    fn push_into(self, ext: &mut ExtFields, key: &'static str) {
        ext.push_static_static(key, if self { "true" } else { "false" });
    }
}

/// SEARCH_OFFSET_BY_TIMESTAMP boundary: `"upper"` (any case) is UPPER, anything else LOWER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundaryType {
    #[default]
    Lower,
    Upper,
}

impl ExtValue for BoundaryType {
    const EXPECTED: &'static str = "lower or upper";
    fn parse(s: &str) -> Option<Self> {
        Some(if s.trim().eq_ignore_ascii_case("upper") {
            BoundaryType::Upper
        } else {
            BoundaryType::Lower
        })
    }
    fn format(&self) -> String {
        match self {
            BoundaryType::Lower => "lower",
            BoundaryType::Upper => "upper",
        }
        .to_owned()
    }
}

/// A required field: missing → `MissingField`, unparsable → `BadField`.
pub fn required<T: ExtValue>(ext: &ExtFields, key: &'static str) -> Result<T> {
    required_raw(ext.get(key), key)
}

/// An optional field: missing → `None`; an empty value of a non-string type counts as missing
/// (clients send `""` for unset fields); unparsable → `BadField`.
pub fn optional<T: ExtValue>(ext: &ExtFields, key: &'static str) -> Result<Option<T>> {
    optional_raw(ext.get(key), key)
}

/// `required` on a value already looked up (see `from_ext`).
pub fn required_raw<T: ExtValue>(raw: Option<&str>, key: &'static str) -> Result<T> {
    let Some(raw) = raw else {
        return Err(WireError::MissingField { field: key });
    };
    match T::parse(raw) {
        Some(v) => Ok(v),
        None => Err(bad_field::<T>(raw, key)),
    }
}

/// The error for a value `T` cannot parse (out of line: the hot path only returns it).
#[cold]
#[inline(never)]
fn bad_field<T: ExtValue>(raw: &str, key: &'static str) -> WireError {
    WireError::BadField {
        field: key,
        value: truncated(raw),
        expected: T::EXPECTED,
    }
}

/// `optional` on a value already looked up (see `from_ext`).
pub fn optional_raw<T: ExtValue>(raw: Option<&str>, key: &'static str) -> Result<Option<T>> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.is_empty() && !T::IS_STRING => Ok(None),
        Some(raw) => match T::parse(raw) {
            Some(v) => Ok(Some(v)),
            None => Err(bad_field::<T>(raw, key)),
        },
    }
}

/// `required` on entry `at` of fields the caller is giving up (`from_ext_owned`): a string
/// value the fields own is moved out instead of copied (a send's properties, ~100 bytes, was
/// copied here and then regrown by the broker).
pub fn required_at<T: ExtValue>(
    ext: &mut ExtFields,
    at: Option<usize>,
    key: &'static str,
) -> Result<T> {
    let Some(at) = at else {
        return Err(WireError::MissingField { field: key });
    };
    if T::IS_STRING {
        if let Some(s) = ext.take_owned_value(at) {
            if let Some(v) = T::from_string(s) {
                return Ok(v);
            }
        }
    }
    required_raw(ext.value_at(at), key)
}

/// `optional` on entry `at` of fields the caller is giving up (see [`required_at`]).
pub fn optional_at<T: ExtValue>(
    ext: &mut ExtFields,
    at: Option<usize>,
    key: &'static str,
) -> Result<Option<T>> {
    let Some(at) = at else {
        return Ok(None);
    };
    if T::IS_STRING {
        if let Some(s) = ext.take_owned_value(at) {
            if let Some(v) = T::from_string(s) {
                return Ok(Some(v));
            }
        }
    }
    optional_raw(ext.value_at(at), key)
}

/// Bad values are echoed in remarks and logs; keep them short.
fn truncated(raw: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    if raw.chars().count() <= SHOWN_CHARS_MAX {
        raw.to_owned()
    } else {
        let mut s: String = raw.chars().take(SHOWN_CHARS_MAX).collect();
        s.push('…');
        s
    }
}

/// Defines a typed header: `req` fields are required (`T`), `opt` fields optional (`Option<T>`).
/// The string after `=` is the wire key (the Java field name).
macro_rules! ext_header {
    ($(#[$m:meta])* pub struct $name:ident {
        $( $(#[$fm:meta])* $kind:ident $field:ident : $ty:ty = $key:literal ),* $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( $(#[$fm])* pub $field: $crate::header::ext_header!(@ty $kind $ty), )*
        }

        impl $name {
            /// Parses the fields from extFields; errors name the wire key. One pass over the
            /// entries (keys are unique) matching each key once (a `match` on the literals,
            /// no index arithmetic), then the fields in declaration order, so the first
            /// missing or bad field is the one reported.
            pub fn from_ext(ext: &$crate::header::ExtFields) -> $crate::error::Result<Self> {
                // One local per field (macro hygiene keeps them apart from the loop's names).
                $( #[allow(unused_mut)] let mut $field: Option<&str> = None; )*
                for (key, value) in ext.iter() {
                    #[allow(unreachable_patterns)]
                    match key {
                        $( $key => $field = Some(value), )*
                        _ => {}
                    }
                }
                Ok(Self {
                    $( $field: $crate::header::ext_header!(@take $kind $field $ty, $key), )*
                })
            }

            /// `from_ext` on fields the caller gives up: a string value they own (one that
            /// had JSON escapes, like a send's properties) is moved, not copied.
            pub fn from_ext_owned(
                #[allow(unused_mut)] mut ext: $crate::header::ExtFields,
            ) -> $crate::error::Result<Self> {
                $( #[allow(unused_mut)] let mut $field: Option<usize> = None; )*
                for (at, key) in ext.keys().enumerate() {
                    #[allow(unreachable_patterns)]
                    match key {
                        $( $key => $field = Some(at), )*
                        _ => {}
                    }
                }
                Ok(Self {
                    $( $field: $crate::header::ext_header!(@take_at $kind ext $field $ty, $key), )*
                })
            }

            /// `to_ext` consuming the header: string fields are moved, not copied (a send
            /// reply's four strings were ~350 instructions of copies).
            pub fn into_ext(self) -> $crate::header::ExtFields {
                #[allow(unused_mut)]
                let mut m = $crate::header::ExtFields::with_capacity([$($key),*].len());
                $( $crate::header::ext_header!(@put_owned $kind m self.$field, $key); )*
                m
            }

            /// All fields as extFields strings; `None` fields are left out.
            pub fn to_ext(&self) -> $crate::header::ExtFields {
                #[allow(unused_mut)]
                let mut m = $crate::header::ExtFields::with_capacity([$($key),*].len());
                $( $crate::header::ext_header!(@put $kind m self.$field, $key); )*
                m
            }
        }

        impl $crate::header::CommandHeader for $name {
            fn from_ext(ext: &$crate::header::ExtFields) -> $crate::error::Result<Self> {
                $name::from_ext(ext)
            }
            fn to_ext(&self) -> $crate::header::ExtFields {
                $name::to_ext(self)
            }
        }
    };
    (@ty req $ty:ty) => { $ty };
    (@ty opt $ty:ty) => { Option<$ty> };
    (@take req $raw:ident $ty:ty, $key:literal) => {
        $crate::header::required_raw::<$ty>($raw, $key)?
    };
    (@take opt $raw:ident $ty:ty, $key:literal) => {
        $crate::header::optional_raw::<$ty>($raw, $key)?
    };
    (@take_at req $ext:ident $at:ident $ty:ty, $key:literal) => {
        $crate::header::required_at::<$ty>(&mut $ext, $at, $key)?
    };
    (@take_at opt $ext:ident $at:ident $ty:ty, $key:literal) => {
        $crate::header::optional_at::<$ty>(&mut $ext, $at, $key)?
    };
    (@put req $m:ident $v:expr, $key:literal) => {
        $m.push_static_unique($key, $crate::header::ExtValue::format(&$v));
    };
    (@put_owned req $m:ident $v:expr, $key:literal) => {
        $crate::header::ExtValue::push_into($v, &mut $m, $key);
    };
    (@put_owned opt $m:ident $v:expr, $key:literal) => {
        if let Some(v) = $v {
            $crate::header::ExtValue::push_into(v, &mut $m, $key);
        }
    };
    (@put opt $m:ident $v:expr, $key:literal) => {
        if let Some(v) = &$v {
            $m.push_static_unique($key, $crate::header::ExtValue::format(v));
        }
    };
}
pub(crate) use ext_header;

/// A header with no fields (HEART_BEAT, LOCK_BATCH_MQ, ...: everything is in the body).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmptyHeader;

impl CommandHeader for EmptyHeader {
    fn from_ext(_: &ExtFields) -> Result<Self> {
        Ok(EmptyHeader)
    }
    fn to_ext(&self) -> ExtFields {
        ExtFields::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The tolerant bool parser as it was before its fast path (the reference).
    fn bool_general(s: &str) -> Option<bool> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("true") || s == "1" {
            Some(true)
        } else if s.eq_ignore_ascii_case("false") || s == "0" {
            Some(false)
        } else {
            None
        }
    }

    /// Text around the integer fast path's edges: signs, spaces, zero fractions, 18/19 digits,
    /// i32 and i64 limits, non-ASCII digits.
    fn arb_int_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[-+ ]{0,2}[0-9]{0,20}(\\.[0-9]{0,2})?[ \t]{0,1}",
            any::<i64>().prop_map(|v| v.to_string()),
            any::<i32>().prop_map(|v| v.to_string()),
            prop::sample::select(vec![
                "",
                "-",
                "+",
                "2147483648",
                "-2147483649",
                "9223372036854775807",
                "-9223372036854775808",
                "9223372036854775808",
                "١٢",
                "0x10",
                "1e3",
                "４",
                "true",
                "TRUE",
                " false",
                "1",
                "0",
                "yes",
            ])
            .prop_map(str::to_string),
        ]
    }

    proptest! {
        /// The one-pass integer parser accepts exactly what the general one accepts, with the
        /// same value; the bool parser's fast path likewise.
        #[test]
        fn fast_scalar_parsers_match_the_general_ones(t in arb_int_text()) {
            prop_assert_eq!(<i32 as ExtValue>::parse(&t), parse_int_general::<i32>(&t));
            prop_assert_eq!(<i64 as ExtValue>::parse(&t), parse_int_general::<i64>(&t));
            prop_assert_eq!(<bool as ExtValue>::parse(&t), bool_general(&t));
        }

        #[test]
        fn integers_format_like_display(v in any::<i64>(), w in any::<i32>()) {
            prop_assert_eq!(v.format(), v.to_string());
            prop_assert_eq!(w.format(), w.to_string());
        }

        /// `into_ext` gives what `to_ext` gives.
        #[test]
        fn into_ext_matches_to_ext(id in ".{0,8}", q in any::<i32>(), off in any::<i64>(),
                                   tx in proptest::option::of(".{0,4}")) {
            let h = SendMessageResponseHeader { msg_id: id, queue_id: q, queue_offset: off,
                transaction_id: tx, msg_region: Some("R".into()), ..Default::default() };
            prop_assert_eq!(h.to_ext(), h.clone().into_ext());
        }
    }

    #[test]
    fn integer_edges() {
        assert_eq!(i64::MIN.format(), i64::MIN.to_string());
        assert_eq!(0i32.format(), "0");
        assert_eq!((-7i32).format(), "-7");
    }
}
