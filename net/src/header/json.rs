//! The JSON header (serialize type 0): tolerant decoding, Java-shaped encoding.
//!
//! Decoding accepts what real clients send: no `serializeTypeCurrentRPC`, extFields values as
//! strings, numbers or booleans (converted to their text form), `null` values (dropped), any
//! field order, unknown fields (ignored). Nesting depth is capped by serde_json (128 levels), the
//! number of extFields entries by [`EXT_FIELDS_MAX`], total size by the frame cap.
//!
//! Encoding writes keys in alphabetical order like fastjson, every extFields value as a JSON
//! string, always an `extFields` object, and `serializeTypeCurrentRPC":"JSON"`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::command::{Body, RemotingCommand};
use crate::error::{Result, WireError};
use crate::header::ext::{ExtFields, TextPart};

/// Most extFields entries a header may carry (the broker's biggest header has about 20).
pub const EXT_FIELDS_MAX: usize = 1024;

#[derive(Deserialize)]
struct JsonHeader {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<ExtMap>,
}

struct ExtMap(HashMap<String, String>);

impl<'de> Deserialize<'de> for ExtMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(ExtMapVisitor)
    }
}

struct ExtMapVisitor;

impl<'de> Visitor<'de> for ExtMapVisitor {
    type Value = ExtMap;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings, numbers or booleans")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<ExtMap, A::Error> {
        // The size hint is not trusted (serde_json gives none); the cap below bounds growth.
        // Most headers carry a handful of fields: start with room for them.
        let mut out = HashMap::with_capacity(16);
        while let Some(key) = map.next_key::<String>()? {
            if out.len() >= EXT_FIELDS_MAX {
                return Err(de::Error::custom(format_args!(
                    "more than {EXT_FIELDS_MAX} extFields"
                )));
            }
            let ExtScalar(value) = map.next_value()?;
            if let Some(value) = value {
                out.insert(key, value);
            }
        }
        Ok(ExtMap(out))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<ExtMap, E> {
        Ok(ExtMap(HashMap::new()))
    }
}

/// One extFields value; `None` for JSON null.
struct ExtScalar(Option<String>);

impl<'de> Deserialize<'de> for ExtScalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = ExtScalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(Some(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(Some(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(Some(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(Some(v.to_string())))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(Some(if v { "true" } else { "false" }.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(None))
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<ExtScalar, E> {
        Ok(ExtScalar(None))
    }
}

/// Parses a JSON header into a command without body.
///
/// The common shape (what our client, the Java client and the C++ client write: the seven known
/// fields, extFields values that are strings, integers, booleans or null, scalar unknown fields)
/// is parsed by a hand-written scanner ([`decode_fast`]); anything else, including every error, goes
/// through serde ([`decode_reference`]). The scanner only answers when serde would give the same
/// command, so the two paths differ in speed only (a differential proptest checks this). The
/// serde path cost ~25k instructions per SEND_MESSAGE_V2 header, a third of the broker's
/// per-message CPU (callgrind, 2026-11-21).
pub fn decode(header: &[u8]) -> Result<RemotingCommand> {
    // serde's derived struct also accepts a JSON array of the fields in order; only objects are
    // RocketMQ headers.
    if header.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(WireError::Json("header is not a JSON object".to_owned()));
    }
    if let Some(cmd) = decode_fast(header) {
        return Ok(cmd);
    }
    decode_reference(header)
}

/// The serde decoder: accepts every header `decode` accepts, and is the one that reports errors.
pub fn decode_reference(header: &[u8]) -> Result<RemotingCommand> {
    if header.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(WireError::Json("header is not a JSON object".to_owned()));
    }
    let h: JsonHeader =
        serde_json::from_slice(header).map_err(|e| WireError::Json(e.to_string()))?;
    Ok(RemotingCommand {
        code: h.code,
        // Java's default; an empty name is what `encode` also writes as JAVA.
        language: h
            .language
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "JAVA".to_owned()),
        version: h.version,
        opaque: h.opaque,
        flag: h.flag,
        remark: h.remark,
        ext_fields: h
            .ext_fields
            .map(|m| ExtFields::from(m.0))
            .unwrap_or_default(),
        body: Body::Empty,
    })
}

/// Most extFields entries the fast path handles; more go to serde (which enforces the cap).
const FAST_EXT_FIELDS_MAX: usize = 64;
/// Largest up-front allocation for an escaped string; longer ones grow as they go.
const ESCAPED_PREALLOC_MAX: usize = 16 << 10;
/// Spare room in an unescaped string for the receiver to append to it.
const ESCAPED_HEADROOM: usize = 96;
/// Integers of at most this many digits cannot overflow i64/u64, so their text is exactly what
/// serde's `visit_i64/visit_u64` + `to_string` would give back.
const FAST_INT_DIGITS_MAX: usize = 18;

/// The hand-written scanner behind [`decode`]. `None`: not the common shape (or not valid JSON):
/// let serde decide. Every `Some` equals what [`decode_reference`] returns for the same bytes.
pub fn decode_fast(header: &[u8]) -> Option<RemotingCommand> {
    // One UTF-8 check for the whole header: every string below is then a slice of valid text
    // (serde rejects invalid UTF-8 in strings; elsewhere it is not JSON; either way not ours).
    let text = std::str::from_utf8(header).ok()?;
    let mut p = Scanner {
        s: header,
        text,
        i: 0,
    };
    let (mut code, mut version, mut opaque, mut flag) = (None, None, None, None);
    let (mut language, mut remark, mut ext) = (None, None, None);
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if !p.eat_if(b'}') {
        loop {
            p.ws();
            let key = p.plain_key()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            match key {
                b"code" => once(&mut code, p.int32()?)?,
                b"version" => once(&mut version, p.int32()?)?,
                b"opaque" => once(&mut opaque, p.int32()?)?,
                b"flag" => once(&mut flag, p.int32()?)?,
                b"language" => once(&mut language, p.opt_string()?)?,
                b"remark" => once(&mut remark, p.opt_string()?)?,
                b"extFields" => once(&mut ext, p.ext_fields()?)?,
                // Unknown fields are ignored by serde (after checking the key is UTF-8); here
                // only scalars are skipped.
                other => {
                    if !other.is_ascii() {
                        std::str::from_utf8(other).ok()?;
                    }
                    p.skip_scalar()?
                }
            }
            p.ws();
            if p.eat_if(b'}') {
                break;
            }
            p.eat(b',')?;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return None;
    }
    Some(RemotingCommand {
        code: code.unwrap_or(0),
        language: language
            .flatten()
            .filter(|l: &String| !l.is_empty())
            .unwrap_or_else(|| "JAVA".to_owned()),
        version: version.unwrap_or(0),
        opaque: opaque.unwrap_or(0),
        flag: flag.unwrap_or(0),
        remark: remark.flatten(),
        ext_fields: ext.flatten().unwrap_or_default(),
        body: Body::Empty,
    })
}

/// `special_at` with the first word looked at inline: most keys and values (and the strings
/// of a reply) end within it, and the general scan out of line costs ~80 instructions even
/// for a one-letter key.
#[inline(always)]
fn find_special(s: &[u8]) -> Option<usize> {
    match s.first_chunk::<8>() {
        Some(w) => match first_special_bytes(scan_word(*w)) {
            0 => Some(8 + special_at(s.get(8..)?)?),
            m => Some((m.trailing_zeros() / 8) as usize),
        },
        None => s.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\'),
    }
}

/// Index of the first byte that ends a plain run inside a JSON string: a quote, a backslash or a
/// control character.
#[inline(never)]
fn special_at(s: &[u8]) -> Option<usize> {
    // Eight bytes per step (a send header's strings are ~300 bytes; byte by byte they were
    // ~4k instructions per request). Loaded little-endian: the first special byte is the
    // lowest flagged one (see `first_special_bytes`).
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for w in words.by_ref() {
        let v = scan_word(w.try_into().unwrap_or([0; 8]));
        let m = first_special_bytes(v);
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|i| at + i)
}

/// Eight bytes of text as a word for [`first_special_bytes`]: the first byte in memory is the
/// least significant. Not a wire or disk integer (those are big-endian): a byte scan, where
/// this order lets the first special byte be found by `trailing_zeros`.
#[allow(clippy::little_endian_bytes)]
fn scan_word(w: [u8; 8]) -> u64 {
    u64::from_le_bytes(w)
}

/// For `v` loaded little-endian (first byte in memory lowest): the high bit of its first
/// byte that is a control character, a quote or a backslash is the lowest bit set; bits above
/// it may be spurious (borrows run upward), bits below never are. Callers only want the first
/// special byte; an exact per-byte mask (big-endian, an add and two ors per test) cost ~1k
/// more instructions per send header.
fn first_special_bytes(v: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20 (bytes with the high bit set never flag: `& !x`).
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let quote = v ^ (ONES * u64::from(b'"'));
    let backslash = v ^ (ONES * u64::from(b'\\'));
    below(v, 0x20) | below(quote, 1) | below(backslash, 1)
}

/// The value of one hex digit (either case).
fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Sets a field seen for the first time; a duplicate is serde's "duplicate field" error.
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// A cursor over the header bytes. Every method returns `None` on anything outside the
/// common shape, leaving the decision to serde.
struct Scanner<'a> {
    s: &'a [u8],
    /// The same bytes, checked to be UTF-8.
    text: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    /// JSON whitespace only (serde_json accepts exactly these four).
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) -> Option<()> {
        self.eat_if(b).then_some(())
    }
    fn eat_if(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_word(&mut self, w: &[u8]) -> bool {
        if self.s.get(self.i..self.i + w.len()) == Some(w) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    /// A key without escapes, as raw bytes (still checked to be UTF-8 by the caller's match or
    /// by `ext_fields`).
    fn plain_key(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let (at, len) = self.plain_string()?;
        let s: &'a [u8] = self.s;
        s.get(at..at + len)
    }

    /// A JSON string with its escapes resolved. Lone surrogates and raw control characters
    /// are serde's errors: `None`.
    fn string(&mut self) -> Option<String> {
        if self.peek() == Some(b'"') {
            if let Some((at, len)) = self.plain_string() {
                return Some(self.text.get(at..at + len)?.to_owned());
            }
        }
        Some(match self.string_part()? {
            Part::Plain(at, len) => self.text.get(at..at + len)?.to_owned(),
            Part::Escaped(s) => s,
        })
    }

    /// At an opening quote: `(at, len)` of the string's text when it has no escapes, past its
    /// closing quote; `None` (nothing consumed) when it has any, for `string_part`.
    fn plain_string(&mut self) -> Option<(usize, usize)> {
        let start = self.i + 1;
        let rest = self.s.get(start..)?;
        let run = find_special(rest)?;
        if rest.get(run) != Some(&b'"') {
            return None;
        }
        self.i = start + run + 1;
        Some((start, run))
    }

    /// A JSON string: where its text is when it has no escapes (most do: no copy), else its
    /// resolved text.
    fn string_part(&mut self) -> Option<Part> {
        self.eat(b'"')?;
        let s: &'a [u8] = self.s;
        let start = self.i;
        let rest = s.get(start..)?;
        let run = special_at(rest)?;
        if rest.get(run) == Some(&b'"') {
            self.i += run + 1;
            return Some(Part::Plain(start, run));
        }
        let text: &'a str = self.text;
        // Unescaped text is never longer than its escaped form, so sizing the string to the
        // rest of the header (bounded) needs no growing; the headroom lets a broker append its
        // properties (UNIQ_KEY, CLUSTER) to a send's without reallocating either. (Growing from
        // `run + 32` reallocated once per send header.)
        let mut out =
            String::with_capacity(rest.len().min(ESCAPED_PREALLOC_MAX) + ESCAPED_HEADROOM);
        loop {
            let start = self.i;
            let rest = self.s.get(start..)?;
            let run = find_special(rest)?;
            // Runs end at an ASCII byte of valid UTF-8 text: a character boundary.
            out.push_str(text.get(start..start + run)?);
            self.i = start + run;
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    // `\u00XX` below 0x80, the form of a message's property separators
                    // (\u0001, \u0002): one byte, without the general escape's work.
                    if let Some(&[b'u', b'0', b'0', h, l]) = self.s.get(self.i + 1..self.i + 6) {
                        if let (Some(h @ 0..=7), Some(l)) = (hex_digit(h), hex_digit(l)) {
                            out.push(char::from(h << 4 | l));
                            self.i += 6;
                            continue;
                        }
                    }
                    self.i += 1;
                    let c = self.peek()?;
                    self.i += 1;
                    let simple = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    out.push(simple);
                }
                _ => return None,
            }
        }
        Some(Part::Escaped(out))
    }

    /// After `\u`: four hex digits, a surrogate pair as two escapes.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xDC00..0xE000).contains(&hi) {
            return None;
        }
        if (0xD800..0xDC00).contains(&hi) {
            if !self.eat_word(b"\\u") {
                return None;
            }
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            return char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
        }
        char::from_u32(hi)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// `-?(0|[1-9][0-9]*)` with at most [`FAST_INT_DIGITS_MAX`] digits, not followed by a
    /// fraction or exponent; returns its text. `-0` is left to serde (it becomes a float there).
    fn int_text(&mut self) -> Option<&[u8]> {
        let start = self.i;
        let neg = self.eat_if(b'-');
        let digits_at = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let digits = self.s.get(digits_at..self.i)?;
        let first = *digits.first()?;
        if digits.len() > FAST_INT_DIGITS_MAX || (first == b'0' && (digits.len() > 1 || neg)) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        self.s.get(start..self.i)
    }

    /// The shape `int_text` accepts, converted while it is scanned. A value outside i32 is
    /// serde's error (None).
    fn int32(&mut self) -> Option<i32> {
        let neg = self.eat_if(b'-');
        let digits_at = self.i;
        let mut v: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            // At most FAST_INT_DIGITS_MAX digits (checked below) before this can overflow,
            // and i32 needs 10: stop early instead of wrapping.
            if self.i - digits_at >= FAST_INT_DIGITS_MAX {
                return None;
            }
            v = v * 10 + i64::from(d - b'0');
            self.i += 1;
        }
        let n = self.i - digits_at;
        let first = *self.s.get(digits_at)?;
        if n == 0 || (first == b'0' && (n > 1 || neg)) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        i32::try_from(if neg { -v } else { v }).ok()
    }

    /// Like `int_text`, as a range of the header.
    fn int_part(&mut self) -> Option<TextPart> {
        let start = self.i;
        let len = self.int_text()?.len();
        TextPart::shared(start, len)
    }

    /// A string or null (an `Option<String>` field).
    fn opt_string(&mut self) -> Option<Option<String>> {
        if self.eat_word(b"null") {
            return Some(None);
        }
        self.string().map(Some)
    }

    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => match self.plain_string() {
                Some(_) => Some(()),
                None => self.string_part().map(drop),
            },
            b'n' => self.eat_word(b"null").then_some(()),
            b't' => self.eat_word(b"true").then_some(()),
            b'f' => self.eat_word(b"false").then_some(()),
            _ => self.int_text().map(drop),
        }
    }

    /// `null` or an object of scalars; values converted to text like `ExtScalar`. Keys and
    /// values without escapes, and numbers, stay ranges of one shared copy of the header.
    fn ext_fields(&mut self) -> Option<Option<ExtFields>> {
        if self.eat_word(b"null") {
            return Some(None);
        }
        self.eat(b'{')?;
        self.ws();
        if self.eat_if(b'}') {
            return Some(Some(ExtFields::new()));
        }
        let mut out = ExtFields::shared(Arc::from(self.text), 16);
        // One bit per (first byte, length) of the keys seen: a key whose bit is clear cannot
        // equal an earlier one, so only the rare key whose bit is set pays the scan for a
        // duplicate (the V2 send header's 13 one-letter keys never do).
        let mut seen: u64 = 0;
        loop {
            self.ws();
            if out.len() >= FAST_EXT_FIELDS_MAX {
                return None;
            }
            // Keys and values without escapes (nearly all) are ranges found by `plain_string`;
            // the rest are resolved by `string_part`.
            let key_at = self.i;
            let key = match self.peek()? {
                b'"' => match self.plain_string() {
                    Some((at, len)) => TextPart::shared(at, len)?,
                    None => self.string_part()?.into_text()?,
                },
                _ => return None,
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = match self.peek()? {
                b'"' => Some(match self.plain_string() {
                    Some((at, len)) => TextPart::shared(at, len)?,
                    None => self.string_part()?.into_text()?,
                }),
                b'n' => self.eat_word(b"null").then_some(None)?,
                b't' => self
                    .eat_word(b"true")
                    .then(|| Some(TextPart::fixed("true")))?,
                b'f' => self
                    .eat_word(b"false")
                    .then(|| Some(TextPart::fixed("false")))?,
                _ => Some(self.int_part()?),
            };
            if let Some(value) = value {
                // The key's first byte and length: of its text, which for a plain key starts
                // right after its opening quote.
                let (first, len) = match key.shared_len() {
                    Some(len) => (self.s.get(key_at + 1).copied().unwrap_or(0), len),
                    None => {
                        let k = out.part_bytes(&key);
                        (k.first().copied().unwrap_or(0), k.len())
                    }
                };
                let bit = 1u64 << ((usize::from(first) + 7 * len) % 64);
                if seen & bit == 0 {
                    seen |= bit;
                    out.push_parts_unique(key, value);
                } else {
                    out.set_parts(key, value);
                }
            }
            self.ws();
            if self.eat_if(b'}') {
                return Some(Some(out));
            }
            self.eat(b',')?;
        }
    }
}

/// A scanned JSON string: `(at, len)` of its text in the header, or its unescaped text.
enum Part {
    Plain(usize, usize),
    Escaped(String),
}

impl Part {
    fn into_text(self) -> Option<TextPart> {
        match self {
            Part::Plain(at, len) => TextPart::shared(at, len),
            Part::Escaped(s) => Some(TextPart::owned(s)),
        }
    }
}

/// Appends the JSON header of `cmd` to `out`. Keys sorted like fastjson; `remark` omitted when
/// `None`; extFields sorted by key, values as strings.
pub fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"code\":");
    push_int(out, i64::from(cmd.code));
    out.extend_from_slice(b",\"extFields\":{");
    let mut first = true;
    cmd.ext_fields.for_each_sorted(|k, v| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_field(out, k, v);
    });
    out.extend_from_slice(b"},\"flag\":");
    push_int(out, i64::from(cmd.flag));
    out.extend_from_slice(b",\"language\":");
    write_str(
        out,
        if cmd.language.is_empty() {
            "JAVA"
        } else {
            &cmd.language
        },
    );
    out.extend_from_slice(b",\"opaque\":");
    push_int(out, i64::from(cmd.opaque));
    if let Some(remark) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        write_str(out, remark);
    }
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    push_int(out, i64::from(cmd.version));
    out.push(b'}');
}

/// Appends the decimal text of `v` (what `write!` gives, without the formatting machinery).
fn push_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes a JSON string literal, escaped as serde_json escapes it (`\"`, `\\`, the short
/// escapes, other control characters as `\u00XX` in lower-case hex; nothing else).
fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // Most strings need no escaping.
    match find_special(b) {
        None => {
            out.reserve(b.len() + 2);
            out.push(b'"');
            out.extend_from_slice(b);
            out.push(b'"');
        }
        Some(run) => write_escaped(out, b, run),
    }
}

/// One extFields entry, `"key":"value"`, with one reservation when neither needs escaping
/// (every field of a send and its reply).
fn write_field(out: &mut Vec<u8>, k: &str, v: &str) {
    let (kb, vb) = (k.as_bytes(), v.as_bytes());
    if find_special(kb).is_none() && find_special(vb).is_none() {
        out.reserve(kb.len() + vb.len() + 5);
        out.push(b'"');
        push_small(out, kb);
        out.extend_from_slice(b"\":\"");
        push_small(out, vb);
        out.push(b'"');
    } else {
        write_str(out, k);
        out.push(b':');
        write_str(out, v);
    }
}

/// Appends `b`; a few bytes (one-letter keys, small numbers) byte by byte, which is cheaper
/// than a call to memcpy.
#[inline(always)]
fn push_small(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() <= 4 {
        for &c in b {
            out.push(c);
        }
    } else {
        out.extend_from_slice(b);
    }
}

/// `write_str` for text whose first special byte is at `run` (the properties of a message:
/// its separators are control characters). Replaces serde_json's writer, which cost ~500
/// instructions per send header in the load tool.
#[cold]
fn write_escaped(out: &mut Vec<u8>, mut b: &[u8], mut run: usize) {
    let hex = |n: u8| {
        b"0123456789abcdef"
            .get(usize::from(n))
            .copied()
            .unwrap_or(b'0')
    };
    out.reserve(b.len() + 8);
    out.push(b'"');
    loop {
        let (plain, rest) = b.split_at(run.min(b.len()));
        out.extend_from_slice(plain);
        let Some((&c, rest)) = rest.split_first() else {
            break;
        };
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(c >> 4), hex(c & 0xf)]),
        }
        b = rest;
        run = match find_special(b) {
            Some(r) => r,
            None => b.len(),
        };
    }
    out.push(b'"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicate_ext_keys_keep_the_last_value_like_serde() {
        // Plain and escaped spellings of one key, nulls (dropped, not removing), and keys that
        // share first byte and length (the duplicate filter's collisions).
        let h = br#"{"code":1,"extFields":{"a":"1","ab":"x","b":2,"a":"3","\u0061":"4","c":null,"b":null,"ac":"y","ab":"z"}}"#;
        let fast = decode_fast(h).expect("common shape");
        assert_eq!(Some(&fast), decode_reference(h).ok().as_ref());
        let e = &fast.ext_fields;
        assert_eq!(e.len(), 4);
        assert_eq!(e.get("a"), Some("4"));
        assert_eq!(e.get("b"), Some("2"));
        assert_eq!(e.get("ab"), Some("z"));
        assert_eq!(e.get("ac"), Some("y"));
        assert_eq!(e.get("c"), None);
    }

    proptest! {
        /// Our string writer escapes exactly as serde_json does.
        #[test]
        fn write_str_matches_serde_json(s in prop_oneof![
            "\\PC{0,40}",
            proptest::collection::vec(prop_oneof![Just('"'), Just('\\'),
                (0u8..0x20).prop_map(char::from), Just('\u{7f}'), Just('/'), Just('é'),
                Just('a')], 0..40)
                .prop_map(|v| v.into_iter().collect::<String>()),
        ]) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
            let mut field = Vec::new();
            write_field(&mut field, &s, "v");
            prop_assert_eq!(String::from_utf8(field).unwrap(),
                format!("{}:\"v\"", serde_json::to_string(&s).unwrap()));
            // Both sides at once, behind text already written.
            let mut field = b"{\"x\":\"y\",".to_vec();
            write_field(&mut field, &s, &s);
            let want = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(String::from_utf8(field).unwrap(),
                format!("{{\"x\":\"y\",{want}:{want}"));
            let mut field = Vec::new();
            write_field(&mut field, "queueOffset", &s);
            prop_assert_eq!(String::from_utf8(field).unwrap(),
                format!("\"queueOffset\":{want}"));
        }

        /// The inline first-word scan finds what a byte-by-byte scan finds.
        #[test]
        fn find_special_matches_a_byte_scan(
            s in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xff, Just(b'a'),
                    Just(0x21u8), Just(0x23u8), Just(0x5bu8), Just(0x5du8), Just(0xa2u8)], 0..40),
        ) {
            let want = s.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(find_special(&s), want);
        }

        /// The word-at-a-time scan finds what a byte-by-byte scan finds, at every alignment.
        #[test]
        fn special_at_matches_a_byte_scan(
            s in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xff, Just(b'a')], 0..40),
            skip in 0usize..9,
        ) {
            let s = s.get(skip.min(s.len())..).unwrap_or_default();
            let want = s.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(special_at(s), want);
        }
    }
}
