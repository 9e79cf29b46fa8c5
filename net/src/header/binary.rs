//! The ROCKETMQ binary header (serialize type 1, `RocketMQSerializable`).
//!
//! ```text
//! +------+------+---------+--------+------+-----------+--------+-----------+------------------+
//! | code | lang | version | opaque | flag | remarkLen | remark | extLen    | ext entries      |
//! | i16  | u8   | i16     | i32    | i32  | i32       | utf-8  | i32       | (i16 k, i32 v)*  |
//! +------+------+---------+--------+------+-----------+--------+-----------+------------------+
//! ```
//! Every length is checked against the bytes that remain before anything is allocated.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;

use crate::command::{Body, RemotingCommand};
use crate::error::{Result, WireError};
use crate::header::codes::{language_code, language_name};
use crate::header::json::EXT_FIELDS_MAX;
use crate::header::ExtFields;

/// Bytes of the fixed part before the remark.
pub const FIXED_BYTES: usize = 2 + 1 + 2 + 4 + 4;

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: &'static str) -> WireError {
        WireError::Binary {
            at: self.at,
            reason,
        }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| self.err(what))?;
        let s = self.buf.get(self.at..end).ok_or_else(|| self.err(what))?;
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        s.try_into().map_err(|_| self.err(what))
    }
    fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }
    fn len_i32(&mut self, what: &'static str) -> Result<usize> {
        let n = self.i32(what)?;
        let n = usize::try_from(n).map_err(|_| self.err(what))?;
        if n > self.buf.len().saturating_sub(self.at) {
            return Err(self.err(what));
        }
        Ok(n)
    }
    fn string(&mut self, n: usize, what: &'static str) -> Result<String> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| self.err("invalid UTF-8"))
    }
}

/// Parses a binary header into a command without body.
pub fn decode(header: &[u8]) -> Result<RemotingCommand> {
    let mut r = Reader { buf: header, at: 0 };
    let code = r.i16("code")?;
    let [lang] = r.array::<1>("language")?;
    let version = r.i16("version")?;
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let remark_len = r.len_i32("remark length")?;
    let remark = if remark_len == 0 {
        None
    } else {
        Some(r.string(remark_len, "remark")?)
    };
    let ext_len = r.len_i32("extFields length")?;
    let ext_bytes = r.take(ext_len, "extFields")?;
    let ext_fields = ExtFields::from(decode_ext(ext_bytes, r.at - ext_len)?);
    Ok(RemotingCommand {
        code: i32::from(code),
        language: language_name(lang).to_owned(),
        version: i32::from(version),
        opaque,
        flag,
        remark,
        ext_fields,
        body: Body::Empty,
    })
}

fn decode_ext(buf: &[u8], base: usize) -> Result<HashMap<String, String>> {
    let mut r = Reader { buf, at: 0 };
    // An entry takes at least 6 bytes, which bounds the pre-sizing by the input.
    let mut out = HashMap::with_capacity((buf.len() / 6).min(16));
    while r.at < buf.len() {
        if out.len() >= EXT_FIELDS_MAX {
            return Err(WireError::Binary {
                at: base + r.at,
                reason: "too many extFields",
            });
        }
        let key_len = r.i16("key length")?;
        let key_len = usize::try_from(key_len).map_err(|_| r.err("key length"))?;
        let key = r.string(key_len, "key").map_err(|e| rebase(e, base))?;
        let val_len = r.len_i32("value length").map_err(|e| rebase(e, base))?;
        let val = r.string(val_len, "value").map_err(|e| rebase(e, base))?;
        out.insert(key, val);
    }
    Ok(out)
}

fn rebase(e: WireError, base: usize) -> WireError {
    match e {
        WireError::Binary { at, reason } => WireError::Binary {
            at: at + base,
            reason,
        },
        other => other,
    }
}

/// Appends the binary header of `cmd` to `out`. Code and version are truncated to 16 bits as in
/// Java; extFields are written sorted by key so frames are reproducible.
pub fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    out.extend_from_slice(&(cmd.code as i16).to_be_bytes());
    out.push(language_code(&cmd.language));
    out.extend_from_slice(&(cmd.version as i16).to_be_bytes());
    out.extend_from_slice(&cmd.opaque.to_be_bytes());
    out.extend_from_slice(&cmd.flag.to_be_bytes());
    let remark = cmd.remark.as_deref().unwrap_or("");
    out.extend_from_slice(&len32(remark.len()).to_be_bytes());
    out.extend_from_slice(remark.as_bytes());
    // Keys longer than an i16 cannot be framed; like Java's null entries they are skipped.
    let mut keys = cmd.ext_fields.sorted();
    keys.retain(|(k, _)| k.len() <= i16::MAX as usize);
    let ext_len: usize = keys.iter().map(|(k, v)| 2 + k.len() + 4 + v.len()).sum();
    out.extend_from_slice(&len32(ext_len).to_be_bytes());
    for (k, v) in keys {
        let klen = k.len() as u16; // checked above: at most i16::MAX
        out.extend_from_slice(&klen.to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&len32(v.len()).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("header string shorter than 4 GiB")
}
