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
use std::io::Write;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::command::{Body, RemotingCommand};
use crate::error::{Result, WireError};

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
pub fn decode(header: &[u8]) -> Result<RemotingCommand> {
    // serde's derived struct also accepts a JSON array of the fields in order; only objects are
    // RocketMQ headers.
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
        ext_fields: h.ext_fields.map(|m| m.0).unwrap_or_default(),
        body: Body::Empty,
    })
}

/// Appends the JSON header of `cmd` to `out`. Keys sorted like fastjson; `remark` omitted when
/// `None`; extFields sorted by key, values as strings.
pub fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail; the `let _` keeps that explicit rather than unwrapping.
    let _ = write!(out, "{{\"code\":{},\"extFields\":{{", cmd.code);
    let mut keys: Vec<(&String, &String)> = cmd.ext_fields.iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_str(out, v);
    }
    let _ = write!(out, "}},\"flag\":{},\"language\":", cmd.flag);
    write_str(
        out,
        if cmd.language.is_empty() {
            "JAVA"
        } else {
            &cmd.language
        },
    );
    let _ = write!(out, ",\"opaque\":{}", cmd.opaque);
    if let Some(remark) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        write_str(out, remark);
    }
    let _ = write!(
        out,
        ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":{}}}",
        cmd.version
    );
}

/// Writes a JSON string literal (serde_json escapes control characters as `\u0001`).
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}
