//! Frame splitting: `[int32 length][int32 type<<24 | headerLen][header][body]`, checked before parsed.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Result, WireError};

/// Default cap on a frame, counting the 4-byte length prefix (Netty's `frameMaxLength`).
pub const FRAME_LEN_MAX: usize = 16 * 1024 * 1024;
/// Bytes of the length prefix.
pub const LEN_PREFIX_BYTES: usize = 4;
/// Largest header: its length has 24 bits.
pub const HEADER_LEN_MAX: usize = 0x00FF_FFFF;
/// Smallest legal value of the length field: just the header-length word.
pub const LEN_FIELD_MIN: usize = 4;

/// Serialize type carried in the top byte of the header-length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    #[default]
    Json,
    RocketMq,
}

impl SerializeType {
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
    pub fn from_code(b: u8) -> Result<Self> {
        match b {
            0 => Ok(SerializeType::Json),
            1 => Ok(SerializeType::RocketMq),
            other => Err(WireError::SerializeType(other)),
        }
    }
}

/// Looks at buffered bytes. `Ok(None)`: need more bytes. `Ok(Some(n))`: a whole frame of `n`
/// bytes (prefix included) is buffered. `Err`: the stream cannot be framed; close it.
/// Never allocates, so a hostile length costs nothing.
pub fn check(buf: &[u8], frame_len_max: usize) -> Result<Option<usize>> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let len = i32::from_be_bytes(*prefix);
    let total = frame_total(len, frame_len_max)?;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(total))
}

/// Validates the length field; returns the whole frame size including the prefix.
pub fn frame_total(len: i32, frame_len_max: usize) -> Result<usize> {
    let bad = || WireError::FrameLength {
        len: i64::from(len),
        max: frame_len_max,
    };
    let len = usize::try_from(len).map_err(|_| bad())?;
    if len < LEN_FIELD_MIN {
        return Err(bad());
    }
    let total = len.checked_add(LEN_PREFIX_BYTES).ok_or_else(bad)?;
    if total > frame_len_max {
        return Err(bad());
    }
    Ok(total)
}

/// A frame split into its parts (borrowed from the receive buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub serialize_type: SerializeType,
    pub header: &'a [u8],
    pub body: &'a [u8],
}

/// Splits the bytes *after* the length prefix (exactly `length` bytes) into header and body.
pub fn split(frame: &[u8]) -> Result<Frame<'_>> {
    let Some((word, rest)) = frame.split_first_chunk::<4>() else {
        return Err(WireError::FrameLength {
            len: frame.len() as i64,
            max: FRAME_LEN_MAX,
        });
    };
    let word = u32::from_be_bytes(*word);
    let serialize_type = SerializeType::from_code((word >> 24) as u8)?;
    let header_len = (word & 0x00FF_FFFF) as usize;
    if header_len > rest.len() {
        return Err(WireError::HeaderLength {
            header_len,
            frame_len: frame.len(),
        });
    }
    let (header, body) = rest.split_at(header_len);
    Ok(Frame {
        serialize_type,
        header,
        body,
    })
}

/// Writes the 8-byte frame prefix for a header of `header_len` and a body of `body_len` bytes.
pub fn prefix(serialize_type: SerializeType, header_len: usize, body_len: usize) -> [u8; 8] {
    assert!(header_len <= 0x00FF_FFFF, "header too long: {header_len}");
    let len = LEN_FIELD_MIN + header_len + body_len;
    let len = u32::try_from(len).expect("frame length fits in 32 bits");
    let word = (u32::from(serialize_type.code()) << 24) | header_len as u32;
    let [a, b, c, d] = len.to_be_bytes();
    let [e, f, g, h] = word.to_be_bytes();
    [a, b, c, d, e, f, g, h]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_needs_prefix_and_whole_frame() {
        assert_eq!(check(&[], FRAME_LEN_MAX).ok(), Some(None));
        assert_eq!(check(&[0, 0, 0], FRAME_LEN_MAX).ok(), Some(None));
        assert_eq!(check(&[0, 0, 0, 4, 0, 0], FRAME_LEN_MAX).ok(), Some(None));
        assert_eq!(
            check(&[0, 0, 0, 4, 0, 0, 0, 0, 9], FRAME_LEN_MAX).ok(),
            Some(Some(8))
        );
    }

    #[test]
    fn check_rejects_hostile_lengths() {
        for len in [0i32, 3, -1, i32::MIN, i32::MAX, FRAME_LEN_MAX as i32 - 3] {
            let b = len.to_be_bytes();
            assert!(check(&b, FRAME_LEN_MAX).is_err(), "len {len}");
        }
        let ok = (FRAME_LEN_MAX as i32 - 4).to_be_bytes();
        assert_eq!(check(&ok, FRAME_LEN_MAX).ok(), Some(None));
    }

    #[test]
    fn split_checks_header_length() {
        assert!(split(&[0, 0, 0, 5, 1, 2]).is_err());
        assert!(split(&[2, 0, 0, 0]).is_err());
        let f = split(&[0, 0, 0, 1, b'{', b'x']).ok();
        assert_eq!(
            f,
            Some(Frame {
                serialize_type: SerializeType::Json,
                header: b"{",
                body: b"x"
            })
        );
        assert_eq!(
            prefix(SerializeType::RocketMq, 41, 0),
            [0, 0, 0, 45, 1, 0, 0, 41]
        );
    }
}
