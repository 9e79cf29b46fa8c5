//! Headers: the two wire encodings (json, binary), the code tables, and typed "custom headers"
//! that travel as extFields (Java field name → value as text).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;

use crate::error::{Result, WireError};

pub mod admin;
pub mod binary;
pub mod codes;
pub mod consumer;
pub mod json;
pub mod namesrv;
pub mod producer;

pub use admin::*;
pub use codes::{RequestCode, ResponseCode};
pub use consumer::*;
pub use namesrv::*;
pub use producer::*;

/// A typed custom header: decoded from and encoded to extFields. Every header type also has
/// inherent `from_ext`/`to_ext` so callers need not import this trait.
pub trait CommandHeader: Sized {
    /// Parses the fields; a missing required field or an unparsable value is an error naming
    /// the field's wire key.
    fn from_ext(ext: &HashMap<String, String>) -> Result<Self>;
    /// All fields as strings; optional fields that are `None` are left out.
    fn to_ext(&self) -> HashMap<String, String>;
}

/// A value type a header field can have, with RocketMQ's text form.
pub trait ExtValue: Sized {
    /// What the error says was expected.
    const EXPECTED: &'static str;
    /// Strings keep an empty value; other types treat `""` in an optional field as absent.
    const IS_STRING: bool = false;
    fn parse(s: &str) -> Option<Self>;
    fn format(&self) -> String;
    /// Like `parse` on a value the caller owns (strings are moved, not copied); the value is
    /// given back when it does not parse.
    fn from_owned(s: String) -> std::result::Result<Self, String> {
        Self::parse(&s).ok_or(s)
    }
}

impl ExtValue for String {
    const EXPECTED: &'static str = "a string";
    const IS_STRING: bool = true;
    fn parse(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn format(&self) -> String {
        self.clone()
    }
    fn from_owned(s: String) -> std::result::Result<Self, String> {
        Ok(s)
    }
}

/// Integers: decimal, optional sign, surrounding spaces tolerated. A JSON number that carried a
/// fraction of zero (`"4.0"`) is accepted too, since some JSON writers emit integers that way.
fn parse_int<T: std::str::FromStr + TryFrom<i64>>(s: &str) -> Option<T> {
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
    fn format(&self) -> String {
        self.to_string()
    }
}

impl ExtValue for i64 {
    const EXPECTED: &'static str = "a 64-bit integer";
    fn parse(s: &str) -> Option<Self> {
        parse_int(s)
    }
    fn format(&self) -> String {
        self.to_string()
    }
}

impl ExtValue for bool {
    const EXPECTED: &'static str = "true/false or 1/0";
    fn parse(s: &str) -> Option<Self> {
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
pub fn required<T: ExtValue>(ext: &HashMap<String, String>, key: &'static str) -> Result<T> {
    let raw = ext.get(key).ok_or(WireError::MissingField { field: key })?;
    T::parse(raw).ok_or_else(|| WireError::BadField {
        field: key,
        value: truncated(raw),
        expected: T::EXPECTED,
    })
}

/// An optional field: missing → `None`; an empty value of a non-string type counts as missing
/// (clients send `""` for unset fields); unparsable → `BadField`.
pub fn optional<T: ExtValue>(
    ext: &HashMap<String, String>,
    key: &'static str,
) -> Result<Option<T>> {
    match ext.get(key) {
        None => Ok(None),
        Some(raw) if raw.is_empty() && !T::IS_STRING => Ok(None),
        Some(raw) => T::parse(raw).map(Some).ok_or_else(|| WireError::BadField {
            field: key,
            value: truncated(raw),
            expected: T::EXPECTED,
        }),
    }
}

/// `required` on a value taken out of the map (see `from_ext_owned`).
pub fn required_owned<T: ExtValue>(raw: Option<String>, key: &'static str) -> Result<T> {
    let raw = raw.ok_or(WireError::MissingField { field: key })?;
    T::from_owned(raw).map_err(|raw| WireError::BadField {
        field: key,
        value: truncated(&raw),
        expected: T::EXPECTED,
    })
}

/// `optional` on a value taken out of the map (see `from_ext_owned`).
pub fn optional_owned<T: ExtValue>(raw: Option<String>, key: &'static str) -> Result<Option<T>> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.is_empty() && !T::IS_STRING => Ok(None),
        Some(raw) => T::from_owned(raw)
            .map(Some)
            .map_err(|raw| WireError::BadField {
                field: key,
                value: truncated(&raw),
                expected: T::EXPECTED,
            }),
    }
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
            /// Parses the fields from extFields; errors name the wire key.
            pub fn from_ext(
                ext: &::std::collections::HashMap<String, String>,
            ) -> $crate::error::Result<Self> {
                Ok(Self {
                    $( $field: $crate::header::ext_header!(@get $kind ext $ty, $key), )*
                })
            }

            /// `from_ext` on a map the caller gives up: one pass over its entries, string
            /// values moved instead of copied, no hashing. Same results and errors as
            /// `from_ext` (fields are checked in the same order).
            pub fn from_ext_owned(
                ext: ::std::collections::HashMap<String, String>,
            ) -> $crate::error::Result<Self> {
                const KEYS: &[&str] = &[$($key),*];
                let mut slots: [Option<String>; KEYS.len()] = ::std::array::from_fn(|_| None);
                for (k, v) in ext {
                    if let Some(i) = KEYS.iter().position(|key| *key == k) {
                        if let Some(slot) = slots.get_mut(i) {
                            *slot = Some(v);
                        }
                    }
                }
                #[allow(unused_mut, unused_variables)]
                let mut slots = slots.into_iter();
                Ok(Self {
                    $( $field: $crate::header::ext_header!(@take $kind slots $ty, $key), )*
                })
            }

            /// All fields as extFields strings; `None` fields are left out.
            pub fn to_ext(&self) -> ::std::collections::HashMap<String, String> {
                #[allow(unused_mut)]
                let mut m = ::std::collections::HashMap::with_capacity(
                    [$($key),*].len(),
                );
                $( $crate::header::ext_header!(@put $kind m self.$field, $key); )*
                m
            }
        }

        impl $crate::header::CommandHeader for $name {
            fn from_ext(
                ext: &::std::collections::HashMap<String, String>,
            ) -> $crate::error::Result<Self> {
                $name::from_ext(ext)
            }
            fn to_ext(&self) -> ::std::collections::HashMap<String, String> {
                $name::to_ext(self)
            }
        }
    };
    (@ty req $ty:ty) => { $ty };
    (@ty opt $ty:ty) => { Option<$ty> };
    (@get req $ext:ident $ty:ty, $key:literal) => {
        $crate::header::required::<$ty>($ext, $key)?
    };
    (@get opt $ext:ident $ty:ty, $key:literal) => {
        $crate::header::optional::<$ty>($ext, $key)?
    };
    (@take req $slots:ident $ty:ty, $key:literal) => {
        $crate::header::required_owned::<$ty>($slots.next().flatten(), $key)?
    };
    (@take opt $slots:ident $ty:ty, $key:literal) => {
        $crate::header::optional_owned::<$ty>($slots.next().flatten(), $key)?
    };
    (@put req $m:ident $v:expr, $key:literal) => {
        $m.insert($key.to_owned(), $crate::header::ExtValue::format(&$v));
    };
    (@put opt $m:ident $v:expr, $key:literal) => {
        if let Some(v) = &$v {
            $m.insert($key.to_owned(), $crate::header::ExtValue::format(v));
        }
    };
}
pub(crate) use ext_header;

/// A header with no fields (HEART_BEAT, LOCK_BATCH_MQ, ...: everything is in the body).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmptyHeader;

impl CommandHeader for EmptyHeader {
    fn from_ext(_: &HashMap<String, String>) -> Result<Self> {
        Ok(EmptyHeader)
    }
    fn to_ext(&self) -> HashMap<String, String> {
        HashMap::new()
    }
}
