//! The stored-record codec: RocketMQ's CommitLog message layout (v1/v2 magic, IPv4/IPv6 hosts), the
//! blank end-of-segment marker, BODYCRC and the properties string. Byte-identical to the Java broker.
//!
//! ```text
//! Format (big-endian; BH/SH = 8 for IPv4, 20 for IPv6; TL = 1 for v1, 2 for v2):
//! { TOTALSIZE i32 | MAGICCODE i32 | BODYCRC i32 | QUEUEID i32 | FLAG i32 | QUEUEOFFSET i64
//!   | PHYSICALOFFSET i64 | SYSFLAG i32 | BORNTIMESTAMP i64 | BORNHOST BH | STORETIMESTAMP i64
//!   | STOREHOST SH | RECONSUMETIMES i32 | PREPAREDTXOFFSET i64 | BODYLENGTH i32 | BODY
//!   | TOPICLENGTH TL | TOPIC | PROPERTIESLENGTH i16 | PROPERTIES }
//! Blank end marker: { TOTALSIZE i32 = bytes left in the segment | MAGICCODE i32 = 0xCBD43194 }
//! ```
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// v1 magic (`MESSAGE_MAGIC_CODE`), 1-byte topic length.
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// v2 magic (`MESSAGE_MAGIC_CODE_V2`), 2-byte topic length; used when the topic exceeds 127 bytes.
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Magic of the blank end-of-segment marker (`BLANK_MAGIC_CODE`).
pub const BLANK_MAGIC: i32 = 0xCBD4_3194_u32 as i32;
/// Bytes a segment always keeps free for the blank marker (`END_FILE_MIN_BLANK_LENGTH`).
pub const BLANK_LEN_BYTES: u64 = 8;

pub const SYSFLAG_COMPRESSED: i32 = 0x1;
pub const SYSFLAG_MULTI_TAGS: i32 = 0x2;
pub const SYSFLAG_TRANSACTION_MASK: i32 = 0xC;
pub const SYSFLAG_TRANSACTION_NOT: i32 = 0x0;
pub const SYSFLAG_TRANSACTION_PREPARED: i32 = 0x4;
pub const SYSFLAG_TRANSACTION_COMMIT: i32 = 0x8;
pub const SYSFLAG_TRANSACTION_ROLLBACK: i32 = 0xC;
pub const SYSFLAG_BORNHOST_V6: i32 = 0x10;
pub const SYSFLAG_STOREHOST_V6: i32 = 0x20;

/// Topics longer than this (in bytes) are written with the v2 magic.
pub const TOPIC_V1_LEN_MAX: usize = 127;
/// The 2-byte topic length field's limit.
pub const TOPIC_LEN_MAX: usize = i16::MAX as usize;
/// The 2-byte properties length field's limit (PROPERTIES_SIZE_EXCEEDED above it).
pub const PROPERTIES_LEN_MAX: usize = i16::MAX as usize;

// Field positions that hold for every variant (`MessageDecoder` constants).
pub const TOTAL_SIZE_POS: usize = 0;
pub const MAGIC_POS: usize = TOTAL_SIZE_POS + 4;
pub const BODY_CRC_POS: usize = MAGIC_POS + 4;
pub const QUEUE_ID_POS: usize = BODY_CRC_POS + 4;
pub const FLAG_POS: usize = QUEUE_ID_POS + 4;
pub const QUEUE_OFFSET_POS: usize = FLAG_POS + 4;
pub const PHY_OFFSET_POS: usize = QUEUE_OFFSET_POS + 8;
pub const SYSFLAG_POS: usize = PHY_OFFSET_POS + 8;
pub const BORN_TIMESTAMP_POS: usize = SYSFLAG_POS + 4;
pub const BORN_HOST_POS: usize = BORN_TIMESTAMP_POS + 8;

/// Fixed bytes of a record besides the hosts, body, topic and properties (4+4+4+4+4+8+8+4+8 before
/// BORNHOST, 8 STORETIMESTAMP, 4+8 after STOREHOST, 4 BODYLENGTH, 2 PROPERTIESLENGTH).
const FIXED_LEN_BYTES: usize = BORN_HOST_POS + 8 + 4 + 8 + 4 + 2;

pub const PROPERTY_KEYS: &str = "KEYS";
pub const PROPERTY_TAGS: &str = "TAGS";
pub const PROPERTY_WAIT_STORE_MSG_OK: &str = "WAIT";
pub const PROPERTY_DELAY_TIME_LEVEL: &str = "DELAY";
pub const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
pub const PROPERTY_REAL_TOPIC: &str = "REAL_TOPIC";
pub const PROPERTY_REAL_QUEUE_ID: &str = "REAL_QID";
pub const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";
pub const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
pub const PROPERTY_MIN_OFFSET: &str = "MIN_OFFSET";
pub const PROPERTY_MAX_OFFSET: &str = "MAX_OFFSET";
pub const PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX: &str = "UNIQ_KEY";
pub const PROPERTY_ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
pub const PROPERTY_RECONSUME_TIME: &str = "RECONSUME_TIME";
pub const PROPERTY_MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
pub const PROPERTY_TRANSACTION_ID: &str = "__transactionId__";
pub const PROPERTY_TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
pub const PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
pub const PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
pub const PROPERTY_CLUSTER: &str = "CLUSTER";
/// Separates a property's name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends every name/value pair.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// BODYCRC: CRC-32/IEEE (zlib's, not CRC32C) of the stored body, masked to 31 bits.
///
/// crc32fast picks its kernel at run time: 128-bit PCLMULQDQ, or VPCLMULQDQ over 256-bit
/// (from 256 bytes) or 512-bit registers (from 2 KiB) where the CPU has them, with a table
/// fallback. crc-fast 1.10 (also VPCLMULQDQ/AVX-512) was measured no faster for 1 KiB and
/// 16 KiB bodies on this machine (see docs/design.md), so there is no second CRC crate.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// The piece size [`RecordParts::encode_tail_crc`] uses for a body of `body_len` bytes. Each
/// piece costs the CRC kernel one fold-and-reduce, so pieces stay small only while the overlap
/// with the copy pays for that: 512 bytes up to 2 KiB bodies (measured best for 1 KiB, ahead
/// of 256 and of one piece), then 2 KiB pieces, the size from which crc32fast uses its
/// 512-bit kernel.
pub fn body_crc_chunk(body_len: usize) -> usize {
    if body_len <= 2048 {
        512
    } else {
        2048
    }
}

/// A record that does not decode. Recovery stops at the first one; nothing here is a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("need {need} bytes, have {have}")]
    UnexpectedEof { need: usize, have: usize },
    #[error("bad magic code {0:#010x}")]
    BadMagic(u32),
    #[error("bad {field} length {len}")]
    BadLength { field: &'static str, len: i64 },
    #[error("TOTALSIZE {stored} does not match the computed size {computed}")]
    SizeMismatch { stored: i64, computed: i64 },
    #[error("BODYCRC {stored:#x} does not match the body's {computed:#x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("PHYSICALOFFSET {stored} is not the record's position {expected}")]
    PhyOffsetMismatch { stored: i64, expected: u64 },
    #[error("{field} is not UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("topic or properties hold a NUL byte or the topic is empty: a torn tail")]
    TornText,
    #[error("port {0} out of range")]
    BadPort(i32),
}

/// One decoded record, borrowing its variable parts from the stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub total_size: u32,
    pub magic: i32,
    pub body_crc: u32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phy_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
}

impl RecordView<'_> {
    /// The value of property `key` (the last one wins, as in Java's map), if any.
    pub fn property(&self, key: &str) -> Option<&str> {
        property_value(self.properties, key)
    }
}

/// What the bytes at a record boundary hold (recovery and the dispatcher walk with this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// A whole, valid record of this many bytes.
    Record(u32),
    /// The blank end marker: continue at the next segment's base.
    EndOfSegment,
    /// Zero bytes (never written): the end of the log.
    End,
}

/// Size of a record with these parts, or `None` if a part is over its field's limit.
pub fn record_len(
    body_len: usize,
    topic_len: usize,
    properties_len: usize,
    born_v6: bool,
    store_v6: bool,
) -> Option<usize> {
    if topic_len > TOPIC_LEN_MAX
        || properties_len > PROPERTIES_LEN_MAX
        || body_len > i32::MAX as usize
    {
        return None;
    }
    let hosts = host_len(born_v6) + host_len(store_v6);
    let topic_field = if topic_len > TOPIC_V1_LEN_MAX { 2 } else { 1 };
    let len = FIXED_LEN_BYTES
        .checked_add(hosts)?
        .checked_add(body_len)?
        .checked_add(topic_field)?
        .checked_add(topic_len)?
        .checked_add(properties_len)?;
    (len <= i32::MAX as usize).then_some(len)
}

fn host_len(v6: bool) -> usize {
    if v6 {
        20
    } else {
        8
    }
}

/// The fields of a record the caller chooses; the store adds offsets and the store timestamp.
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a> {
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phy_offset: i64,
    /// IPv6 bits (0x10, 0x20) are recomputed from the hosts.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body_crc: u32,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
}

impl RecordParts<'_> {
    /// The encoded size, or `None` if a part exceeds its field.
    pub fn encoded_len(&self) -> Option<usize> {
        record_len(
            self.body.len(),
            self.topic.len(),
            self.properties.len(),
            self.born_host.is_ipv6(),
            self.store_host.is_ipv6(),
        )
    }

    /// SYSFLAG as stored: the given flags with the IPv6 bits matching the hosts.
    pub fn stored_sys_flag(&self) -> i32 {
        let mut f = self.sys_flag & !(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6);
        if self.born_host.is_ipv6() {
            f |= SYSFLAG_BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            f |= SYSFLAG_STOREHOST_V6;
        }
        f
    }

    /// Writes the record into `out`, which must be exactly `encoded_len()` bytes (asserted: the
    /// caller sized it, so a mismatch is our bug). The same bytes as [`Self::encode_tail`]
    /// followed by [`Self::encode_head`].
    pub fn encode(&self, out: &mut [u8]) {
        let head_len = self.encode_tail(out);
        self.encode_head(out, head_len);
    }

    /// Length of the fixed head (TOTALSIZE through BODYLENGTH): where the body starts.
    pub fn head_len(&self) -> usize {
        BORN_HOST_POS
            + host_len(self.born_host.is_ipv6())
            + 8
            + host_len(self.store_host.is_ipv6())
            + 16
    }

    /// Writes everything after the head (BODY, TOPICLENGTH, TOPIC, PROPERTIESLENGTH, PROPERTIES)
    /// into `out`, sized as for [`Self::encode`]; returns the head length, for
    /// [`Self::encode_head`]. The tail does not depend on the head's fields, so the appender
    /// writes it first, with BODYCRC computed along the way ([`Self::encode_tail_crc`]), and
    /// the head (which holds BODYCRC) last.
    pub fn encode_tail(&self, out: &mut [u8]) -> usize {
        self.encode_tail_with(out, |w, body| w.put(body))
    }

    /// [`Self::encode_tail`] that also returns the body's BODYCRC ([`body_crc`], ignoring
    /// `self.body_crc`), computed in `chunk`-byte pieces, each just before it is copied: the
    /// copy then reads what the CRC brought into L1, and the next piece's CRC runs while this
    /// piece's stores drain.
    pub fn encode_tail_crc(&self, out: &mut [u8], chunk: usize) -> (usize, u32) {
        let mut h = crc32fast::Hasher::new();
        let head_len = self.encode_tail_with(out, |w, body| {
            for piece in body.chunks(chunk.max(1)) {
                h.update(piece);
                w.put(piece);
            }
        });
        (head_len, h.finalize() & 0x7FFF_FFFF)
    }

    fn encode_tail_with(&self, out: &mut [u8], body: impl FnOnce(&mut Put<'_>, &[u8])) -> usize {
        let len = self.encoded_len();
        assert_eq!(len, Some(out.len()), "record buffer sized wrongly");
        let v2 = self.topic.len() > TOPIC_V1_LEN_MAX;
        let head_len = self.head_len();
        let mut w = Put {
            buf: out,
            pos: head_len,
        };
        body(&mut w, self.body);
        if v2 {
            w.put(&(self.topic.len() as i16).to_be_bytes());
        } else {
            w.put(&[self.topic.len() as u8]);
        }
        w.put(self.topic.as_bytes());
        w.put(&(self.properties.len() as i16).to_be_bytes());
        w.put(self.properties.as_bytes());
        assert_eq!(w.pos, w.buf.len(), "record encoder left a gap");
        head_len
    }

    /// Writes the head (TOTALSIZE through BODYLENGTH, with `self.body_crc`) into the first
    /// `head_len` bytes of `out` (the value [`Self::encode_tail`] returned for the same `out`).
    ///
    /// This runs on every put under the append lock, so the head is assembled in a stack array at
    /// constant offsets, where the optimiser drops the bounds checks, and lands with one copy.
    pub fn encode_head(&self, out: &mut [u8], head_len: usize) {
        let v2 = self.topic.len() > TOPIC_V1_LEN_MAX;
        let mut head = [0u8; HEAD_LEN_MAX];
        let mut h = Head(&mut head);
        h.at(TOTAL_SIZE_POS, (out.len() as i32).to_be_bytes());
        h.at(
            MAGIC_POS,
            (if v2 { MAGIC_V2 } else { MAGIC_V1 }).to_be_bytes(),
        );
        h.at(BODY_CRC_POS, self.body_crc.to_be_bytes());
        h.at(QUEUE_ID_POS, self.queue_id.to_be_bytes());
        h.at(FLAG_POS, self.flag.to_be_bytes());
        h.at(QUEUE_OFFSET_POS, self.queue_offset.to_be_bytes());
        h.at(PHY_OFFSET_POS, self.phy_offset.to_be_bytes());
        h.at(SYSFLAG_POS, self.stored_sys_flag().to_be_bytes());
        h.at(BORN_TIMESTAMP_POS, self.born_timestamp.to_be_bytes());
        let mut p = h.host(BORN_HOST_POS, &self.born_host);
        h.at(p, self.store_timestamp.to_be_bytes());
        p = h.host(p + 8, &self.store_host);
        h.at(p, self.reconsume_times.to_be_bytes());
        h.at(p + 4, self.prepared_transaction_offset.to_be_bytes());
        h.at(p + 12, (self.body.len() as i32).to_be_bytes());
        assert_eq!(p + 16, head_len, "record head sized wrongly");
        let mut w = Put { buf: out, pos: 0 };
        w.put(head.get(..head_len).unwrap_or_default());
    }

    /// Encodes into a new vector (tests, fixtures, owned copies).
    pub fn to_vec(&self) -> Option<Vec<u8>> {
        let mut v = vec![0u8; self.encoded_len()?];
        self.encode(&mut v);
        Some(v)
    }
}

/// Longest record head (TOTALSIZE through BODYLENGTH): both hosts IPv6.
const HEAD_LEN_MAX: usize = BORN_HOST_POS + 20 + 8 + 20 + 4 + 8 + 4;

/// The record head under construction, written at fixed positions.
struct Head<'a>(&'a mut [u8; HEAD_LEN_MAX]);

impl Head<'_> {
    #[inline(always)]
    fn at<const N: usize>(&mut self, pos: usize, v: [u8; N]) {
        match self.0.get_mut(pos..pos + N) {
            Some(d) => d.copy_from_slice(&v),
            None => unreachable!("record head field past HEAD_LEN_MAX"),
        }
    }

    /// Writes a host (address, then the port as an i32) at `pos`; returns the position after it.
    #[inline(always)]
    fn host(&mut self, pos: usize, addr: &SocketAddr) -> usize {
        let port = i32::from(addr.port()).to_be_bytes();
        match addr.ip() {
            IpAddr::V4(ip) => {
                self.at(pos, ip.octets());
                self.at(pos + 4, port);
                pos + 8
            }
            IpAddr::V6(ip) => {
                self.at(pos, ip.octets());
                self.at(pos + 16, port);
                pos + 20
            }
        }
    }
}

struct Put<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Put<'_> {
    fn put(&mut self, src: &[u8]) {
        let end = self.pos + src.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => dst.copy_from_slice(src),
            None => unreachable!("record encoder overran its exactly-sized buffer"),
        }
        self.pos = end;
    }
}

/// A bounds-checked big-endian reader.
struct Get<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Get<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).ok_or(RecordError::UnexpectedEof {
            need: usize::MAX,
            have: self.buf.len(),
        })?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(RecordError::UnexpectedEof {
                need: end,
                have: self.buf.len(),
            })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn host(&mut self, v6: bool) -> Result<SocketAddr, RecordError> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))
        };
        let port = self.i32()?;
        let port = u16::try_from(port).map_err(|_| RecordError::BadPort(port))?;
        Ok(SocketAddr::new(ip, port))
    }
}

/// The lengths that determine a record's layout, read without touching the body.
struct Shape {
    total_size: i32,
    magic: i32,
    sys_flag: i32,
    body_pos: usize,
    body_len: usize,
    topic_len_pos: usize,
    computed_len: usize,
}

fn shape(buf: &[u8]) -> Result<Shape, RecordError> {
    let mut g = Get { buf, pos: 0 };
    let total_size = g.i32()?;
    let magic = g.i32()?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(RecordError::BadMagic(magic as u32));
    }
    if total_size < FIXED_LEN_BYTES as i32 {
        return Err(RecordError::BadLength {
            field: "TOTALSIZE",
            len: i64::from(total_size),
        });
    }
    g.pos = SYSFLAG_POS;
    let sys_flag = g.i32()?;
    let born_v6 = sys_flag & SYSFLAG_BORNHOST_V6 != 0;
    let store_v6 = sys_flag & SYSFLAG_STOREHOST_V6 != 0;
    // BORNTIMESTAMP, BORNHOST, STORETIMESTAMP, STOREHOST, RECONSUMETIMES, PREPAREDTXOFFSET.
    let body_len_pos = BORN_HOST_POS + host_len(born_v6) + 8 + host_len(store_v6) + 4 + 8;
    g.pos = body_len_pos;
    let body_len = g.i32()?;
    let body_len = usize::try_from(body_len).map_err(|_| RecordError::BadLength {
        field: "BODYLENGTH",
        len: i64::from(body_len),
    })?;
    let body_pos = g.pos;
    let topic_len_pos = body_pos
        .checked_add(body_len)
        .ok_or(RecordError::BadLength {
            field: "BODYLENGTH",
            len: body_len as i64,
        })?;
    // The record must hold its body before we read what follows it.
    if topic_len_pos > total_size as usize {
        return Err(RecordError::BadLength {
            field: "BODYLENGTH",
            len: body_len as i64,
        });
    }
    g.pos = topic_len_pos;
    let topic_len = if magic == MAGIC_V2 {
        i64::from(g.i16()?)
    } else {
        i64::from(g.i8()?)
    };
    let topic_len = usize::try_from(topic_len).map_err(|_| RecordError::BadLength {
        field: "TOPICLENGTH",
        len: topic_len,
    })?;
    g.pos = g.pos.saturating_add(topic_len);
    let props_len = g.i16()?;
    let props_len = usize::try_from(props_len).map_err(|_| RecordError::BadLength {
        field: "PROPERTIESLENGTH",
        len: i64::from(props_len),
    })?;
    let topic_field = if magic == MAGIC_V2 { 2 } else { 1 };
    let computed_len = FIXED_LEN_BYTES
        + host_len(born_v6)
        + host_len(store_v6)
        + body_len
        + topic_field
        + topic_len
        + props_len;
    if computed_len != total_size as usize {
        return Err(RecordError::SizeMismatch {
            stored: i64::from(total_size),
            computed: computed_len as i64,
        });
    }
    Ok(Shape {
        total_size,
        magic,
        sys_flag,
        body_pos,
        body_len,
        topic_len_pos,
        computed_len,
    })
}

/// Classifies the bytes at a record boundary. `rest` runs from the boundary to the end of its
/// segment, `phy_offset` is the boundary's CommitLog offset. Validates the magic, the size bounds,
/// the size formula, PHYSICALOFFSET and (if `check_crc`) BODYCRC; any failure is an `Err` and ends
/// a recovery scan. Never panics, whatever `rest` holds.
pub fn scan(rest: &[u8], phy_offset: u64, check_crc: bool) -> Result<Scan, RecordError> {
    let (found, pending) = scan_deferring_crc(rest, phy_offset)?;
    if let (true, Some(p)) = (check_crc, pending) {
        p.check(rest)?;
    }
    Ok(found)
}

/// What checking a record's BODYCRC needs, so a scan can hand it to another thread: the body's
/// position and length within the record and the stored BODYCRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCrc {
    pub body_pos: u32,
    pub body_len: u32,
    pub stored: u32,
}

impl PendingCrc {
    /// Checks the BODYCRC of the record at the start of `record` (the bytes [`scan_deferring_crc`]
    /// was given). Never panics.
    pub fn check(&self, record: &[u8]) -> Result<(), RecordError> {
        let start = self.body_pos as usize;
        let end = start.saturating_add(self.body_len as usize);
        let body = record.get(start..end).ok_or(RecordError::UnexpectedEof {
            need: end,
            have: record.len(),
        })?;
        let computed = body_crc(body);
        if self.stored != computed {
            return Err(RecordError::CrcMismatch {
                stored: self.stored,
                computed,
            });
        }
        Ok(())
    }
}

/// [`scan`] with every check but BODYCRC; for a record, also what checking its BODYCRC needs
/// (`None` for the blank marker and for the end). `scan` is this plus [`PendingCrc::check`].
pub fn scan_deferring_crc(
    rest: &[u8],
    phy_offset: u64,
) -> Result<(Scan, Option<PendingCrc>), RecordError> {
    let mut g = Get { buf: rest, pos: 0 };
    let total_size = g.i32()?;
    let magic = g.i32()?;
    if magic == BLANK_MAGIC {
        if total_size >= BLANK_LEN_BYTES as i32 && total_size as usize == rest.len() {
            return Ok((Scan::EndOfSegment, None));
        }
        return Err(RecordError::BadLength {
            field: "blank TOTALSIZE",
            len: i64::from(total_size),
        });
    }
    if total_size == 0 && magic == 0 {
        return Ok((Scan::End, None));
    }
    if total_size < 0 || total_size as usize > rest.len() {
        return Err(RecordError::BadLength {
            field: "TOTALSIZE",
            len: i64::from(total_size),
        });
    }
    let record = rest
        .get(..total_size as usize)
        .ok_or(RecordError::UnexpectedEof {
            need: total_size as usize,
            have: rest.len(),
        })?;
    let shape = shape(record)?;
    let stored_phy = i64::from_be_bytes(array_at(record, PHY_OFFSET_POS)?);
    if stored_phy < 0 || stored_phy as u64 != phy_offset {
        return Err(RecordError::PhyOffsetMismatch {
            stored: stored_phy,
            expected: phy_offset,
        });
    }
    // A record torn inside its topic or properties keeps a valid size formula and BODYCRC (the CRC
    // covers the body only); the lost bytes read back as zeros. Neither field may hold a NUL (the
    // store refuses such messages), so a NUL there means the tail of this record never reached
    // the disk.
    let tail = record.get(shape.topic_len_pos..).unwrap_or_default();
    if has_nul_in_text(tail, shape.magic) {
        return Err(RecordError::TornText);
    }
    let stored = u32::from_be_bytes(array_at(record, BODY_CRC_POS)?);
    debug_assert_eq!(shape.computed_len, shape.total_size as usize);
    // Both fit: the body lies inside the record, whose size is a non-negative i32.
    let pending = PendingCrc {
        body_pos: shape.body_pos as u32,
        body_len: shape.body_len as u32,
        stored,
    };
    Ok((Scan::Record(shape.total_size as u32), Some(pending)))
}

/// Whether the topic or properties bytes of `tail` (TOPICLENGTH onwards) contain a NUL byte, or
/// the topic is empty.
fn has_nul_in_text(tail: &[u8], magic: i32) -> bool {
    let mut g = Get { buf: tail, pos: 0 };
    let topic_len = if magic == MAGIC_V2 {
        g.i16().map(i64::from)
    } else {
        g.i8().map(i64::from)
    };
    let Ok(topic_len) = topic_len else {
        return true;
    };
    let Ok(topic) = g.bytes(topic_len.max(0) as usize) else {
        return true;
    };
    let props = g.i16().and_then(|n| g.bytes(n.max(0) as usize));
    let Ok(props) = props else {
        return true;
    };
    topic.is_empty() || topic.contains(&0) || props.contains(&0)
}

fn array_at<const N: usize>(buf: &[u8], pos: usize) -> Result<[u8; N], RecordError> {
    let mut g = Get { buf, pos };
    g.array()
}

/// Decodes one whole record from the start of `buf` (extra bytes after it are ignored). Checks the
/// magic and the size formula, not the CRC (see [`scan`]) and not PHYSICALOFFSET.
pub fn decode_record(buf: &[u8]) -> Result<RecordView<'_>, RecordError> {
    let total_size = i32::from_be_bytes(array_at(buf, TOTAL_SIZE_POS)?);
    let len = usize::try_from(total_size).map_err(|_| RecordError::BadLength {
        field: "TOTALSIZE",
        len: i64::from(total_size),
    })?;
    let record = buf.get(..len).ok_or(RecordError::UnexpectedEof {
        need: len,
        have: buf.len(),
    })?;
    let shape = shape(record)?;
    let mut g = Get {
        buf: record,
        pos: BODY_CRC_POS,
    };
    let body_crc = g.i32()? as u32;
    let queue_id = g.i32()?;
    let flag = g.i32()?;
    let queue_offset = g.i64()?;
    let phy_offset = g.i64()?;
    let sys_flag = g.i32()?;
    let born_timestamp = g.i64()?;
    let born_host = g.host(sys_flag & SYSFLAG_BORNHOST_V6 != 0)?;
    let store_timestamp = g.i64()?;
    let store_host = g.host(sys_flag & SYSFLAG_STOREHOST_V6 != 0)?;
    let reconsume_times = g.i32()?;
    let prepared_transaction_offset = g.i64()?;
    let _body_len = g.i32()?;
    debug_assert_eq!(g.pos, shape.body_pos);
    let body = g.bytes(shape.body_len)?;
    debug_assert_eq!(g.pos, shape.topic_len_pos);
    let topic_len = if shape.magic == MAGIC_V2 {
        g.i16()? as usize
    } else {
        g.i8()? as usize
    };
    let topic = std::str::from_utf8(g.bytes(topic_len)?)
        .map_err(|_| RecordError::NotUtf8 { field: "TOPIC" })?;
    let props_len = g.i16()? as usize;
    let properties =
        std::str::from_utf8(g.bytes(props_len)?).map_err(|_| RecordError::NotUtf8 {
            field: "PROPERTIES",
        })?;
    debug_assert_eq!(shape.sys_flag, sys_flag);
    Ok(RecordView {
        total_size: shape.total_size as u32,
        magic: shape.magic,
        body_crc,
        queue_id,
        flag,
        queue_offset,
        phy_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic,
        properties,
    })
}

/// What the dispatcher reads of a record: [`decode_record`]'s checks and values for these
/// fields, without decoding the hosts, the born time, the flag or the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchView<'a> {
    pub total_size: u32,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub phy_offset: i64,
    pub sys_flag: i32,
    pub store_timestamp: i64,
    pub topic: &'a str,
    pub properties: &'a str,
}

impl DispatchView<'_> {
    /// The transaction type bits (`SYSFLAG_TRANSACTION_*`).
    pub fn transaction_type(&self) -> i32 {
        self.sys_flag & SYSFLAG_TRANSACTION_MASK
    }

    /// The value of property `key` (the last one wins, as in Java's map), if any.
    pub fn property(&self, key: &str) -> Option<&str> {
        property_value(self.properties, key)
    }

    /// The values of several properties, in one pass over the properties string (the
    /// dispatcher needs TAGS, UNIQ_KEY and KEYS of every record).
    pub fn properties<const N: usize>(&self, keys: [&str; N]) -> [Option<&str>; N] {
        property_values(self.properties, keys)
    }
}

/// [`decode_record`] for the dispatcher: the same validation (size, magic, size formula, UTF-8 of
/// the topic and properties) and the same errors, but only the fields dispatch needs, read at
/// their computed positions. The dispatcher decodes every record once more after the append;
/// the full decode (two `SocketAddr`s, every field through a cursor) was a third of its cost.
pub fn decode_dispatch(buf: &[u8]) -> Result<DispatchView<'_>, RecordError> {
    let total_size = i32::from_be_bytes(array_at(buf, TOTAL_SIZE_POS)?);
    let len = usize::try_from(total_size).map_err(|_| RecordError::BadLength {
        field: "TOTALSIZE",
        len: i64::from(total_size),
    })?;
    let record = buf.get(..len).ok_or(RecordError::UnexpectedEof {
        need: len,
        have: buf.len(),
    })?;
    let shape = shape(record)?;
    let i32_at = |pos| array_at(record, pos).map(i32::from_be_bytes);
    let i64_at = |pos| array_at(record, pos).map(i64::from_be_bytes);
    let queue_id = i32_at(QUEUE_ID_POS)?;
    let queue_offset = i64_at(QUEUE_OFFSET_POS)?;
    let phy_offset = i64_at(PHY_OFFSET_POS)?;
    let born_v6 = shape.sys_flag & SYSFLAG_BORNHOST_V6 != 0;
    let store_v6 = shape.sys_flag & SYSFLAG_STOREHOST_V6 != 0;
    // Each host ends with its port as an i32; decode_record refuses one outside u16.
    let port_ok = |port_pos| {
        let port = i32_at(port_pos)?;
        u16::try_from(port).map_err(|_| RecordError::BadPort(port))
    };
    let store_ts_pos = BORN_HOST_POS + host_len(born_v6);
    port_ok(store_ts_pos - 4)?;
    let store_timestamp = i64_at(store_ts_pos)?;
    port_ok(store_ts_pos + 8 + host_len(store_v6) - 4)?;
    let (topic_pos, topic_len) = if shape.magic == MAGIC_V2 {
        let n = i16::from_be_bytes(array_at(record, shape.topic_len_pos)?);
        (shape.topic_len_pos + 2, n as usize)
    } else {
        let n = i8::from_be_bytes(array_at(record, shape.topic_len_pos)?);
        (shape.topic_len_pos + 1, n as usize)
    };
    let eof = |need: usize| RecordError::UnexpectedEof {
        need,
        have: record.len(),
    };
    let topic_end = topic_pos.checked_add(topic_len).ok_or(eof(usize::MAX))?;
    let topic = record.get(topic_pos..topic_end).ok_or(eof(topic_end))?;
    let topic = std::str::from_utf8(topic).map_err(|_| RecordError::NotUtf8 { field: "TOPIC" })?;
    let props_len = i16::from_be_bytes(array_at(record, topic_end)?) as usize;
    let props_pos = topic_end + 2;
    let props_end = props_pos.checked_add(props_len).ok_or(eof(usize::MAX))?;
    let properties = record.get(props_pos..props_end).ok_or(eof(props_end))?;
    let properties = std::str::from_utf8(properties).map_err(|_| RecordError::NotUtf8 {
        field: "PROPERTIES",
    })?;
    Ok(DispatchView {
        total_size: shape.total_size as u32,
        queue_id,
        queue_offset,
        phy_offset,
        sys_flag: shape.sys_flag,
        store_timestamp,
        topic,
        properties,
    })
}

/// Decodes consecutive records (a pull body) until the bytes run out; fails on the first bad one.
pub fn decode_records(mut buf: &[u8]) -> Result<Vec<RecordView<'_>>, RecordError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let r = decode_record(buf)?;
        buf = buf.get(r.total_size as usize..).unwrap_or_default();
        out.push(r);
    }
    Ok(out)
}

/// The 8-byte blank end marker for a segment with `left_bytes` bytes left at the marker.
pub fn blank_marker(left_bytes: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    let (size, magic) = b.split_at_mut(4);
    size.copy_from_slice(&(left_bytes as i32).to_be_bytes());
    magic.copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    b
}

/// Encodes properties as Java does: `name \x01 value \x02` for each pair.
pub fn encode_properties<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        s.push_str(k.as_ref());
        s.push(NAME_VALUE_SEPARATOR);
        s.push_str(v.as_ref());
        s.push(PROPERTY_SEPARATOR);
    }
    s
}

/// Decodes a properties string with Java's (HEAD) rules: split on `\x02`; keep a segment only if
/// its first `\x01` has a non-empty name before it and a non-empty value after it; the value is the
/// rest of the segment. Pairs come back in order (a later duplicate overrides in Java's map).
pub fn decode_properties(s: &str) -> Vec<(String, String)> {
    property_pairs(s)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of `key` in a properties string (the last pair wins), without allocating.
pub fn property_value<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut out = None;
    each_property(s, |k, v| {
        if k == key {
            out = Some(v);
        }
    });
    out
}

/// [`property_value`] of each of `keys`, in one pass over `s` (the last value of a key wins).
pub fn property_values<'a, const N: usize>(s: &'a str, keys: [&str; N]) -> [Option<&'a str>; N] {
    let mut out = [None; N];
    each_property(s, |k, v| {
        for (want, slot) in keys.iter().zip(out.iter_mut()) {
            if want.len() == k.len() && *want == k {
                *slot = Some(v);
            }
        }
    });
    out
}

/// Calls `f` with each pair of a properties string, in order, from one pass over its bytes: a
/// `\x02` ends a pair, whose name ends at its first `\x01` (Java's rules). The dispatcher looks up
/// TAGS, UNIQ_KEY and KEYS in every record: byte-at-a-time `position` loops (one per separator)
/// were ~700 instructions per 52-byte property string and `memchr` calls (costly to set up on
/// strings this short) ~640, where [`separator_mask`] tests 8 bytes at a time. The separators are
/// ASCII, so every cut lands on a char boundary.
fn each_property<'a>(s: &'a str, mut f: impl FnMut(&'a str, &'a str)) {
    let mut seg_start = 0usize;
    let mut name_end = usize::MAX;
    let mut pair = |start: usize, name: usize, end: usize| {
        // Java's rule: a non-empty name before the first \x01 and a non-empty value after it.
        if name != usize::MAX && name > start && name + 1 < end {
            if let (Some(k), Some(v)) = (s.get(start..name), s.get(name + 1..end)) {
                f(k, v);
            }
        }
    };
    let b = s.as_bytes();
    let mut word = 0usize;
    while word < b.len() {
        let mut mask = separator_mask(b, word);
        while mask != 0 {
            let i = word + next_separator(&mut mask);
            if b.get(i) == Some(&NAME_VALUE_BYTE) {
                if name_end == usize::MAX {
                    name_end = i;
                }
            } else {
                pair(seg_start, name_end, i);
                seg_start = i + 1;
                name_end = usize::MAX;
            }
        }
        word += 8;
    }
    pair(seg_start, name_end, s.len());
}

/// The pairs of a properties string, in order ([`each_property`]).
fn property_pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut pairs = Vec::new();
    each_property(s, |k, v| pairs.push((k, v)));
    pairs.into_iter()
}

const NAME_VALUE_BYTE: u8 = NAME_VALUE_SEPARATOR as u8;
const PROPERTY_BYTE: u8 = PROPERTY_SEPARATOR as u8;

/// A mask with the top bit set of each byte of the 8 bytes of `b` at `word` that is `\x01` or
/// `\x02` (bytes past the end read as zero, which is neither); the byte at `word + k` is the
/// `k`-th from the top, taken out in order by [`next_separator`]. A byte equal to `c` is a zero
/// byte of `w ^ c*0x01..01`, and `((y & 0x7f) + 0x7f) | y` has its top bit clear exactly for a
/// zero byte `y` (no carry crosses bytes, so no false hits).
fn separator_mask(b: &[u8], word: usize) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let zero_bytes = |y: u64| !(((y & LO7) + LO7) | y) & !LO7;
    // Big-endian: the byte at `word` is the top byte, so the first match is the highest bit.
    let w = match b
        .get(word..word + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok())
    {
        Some(c) => u64::from_be_bytes(c),
        // The last, short word, built byte by byte (a variable-length copy is a memcpy call).
        None => {
            let tail = b.get(word..).unwrap_or_default();
            let w = tail.iter().fold(0u64, |w, &c| (w << 8) | u64::from(c));
            w << (8 * (8 - tail.len().clamp(1, 7)))
        }
    };
    zero_bytes(w ^ (ONES * u64::from(NAME_VALUE_BYTE)))
        | zero_bytes(w ^ (ONES * u64::from(PROPERTY_BYTE)))
}

/// Takes the first match (the highest bit) out of a non-zero [`separator_mask`]; returns its
/// byte index in the word.
fn next_separator(mask: &mut u64) -> usize {
    let lz = mask.leading_zeros().min(63);
    *mask &= !(1u64 << (63 - lz));
    (lz / 8) as usize
}

/// The separators [`separator_mask`] finds, in order (the test oracle's view of the scan).
#[cfg(test)]
fn separators(b: &[u8]) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    let mut word = 0usize;
    while word < b.len() {
        let mut mask = separator_mask(b, word);
        while mask != 0 {
            let i = word + next_separator(&mut mask);
            out.push((i, b.get(i).copied().unwrap_or(0)));
        }
        word += 8;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts<'a>(body: &'a [u8], topic: &'a str, props: &'a str) -> RecordParts<'a> {
        RecordParts {
            queue_id: 3,
            flag: 7,
            queue_offset: 42,
            phy_offset: 1000,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_123,
            born_host: "192.168.0.2:51000".parse().unwrap(),
            store_timestamp: 1_700_000_000_456,
            store_host: "192.168.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: body_crc(body),
            body,
            topic,
            properties: props,
        }
    }

    #[test]
    fn crc_matches_java_vector() {
        assert_eq!(body_crc(b"hello"), 907_060_870);
        assert_eq!(body_crc(b""), 0);
    }

    /// Golden fixture: the bytes Java's `MessageExtEncoder` writes for this message, laid out by
    /// hand from the reference table (§3.1), field by field.
    #[test]
    fn golden_v1_ipv4_record() {
        let props = encode_properties(&[("TAGS", "TagA"), ("UNIQ_KEY", "AB")]);
        let p = parts(b"hello", "T", &props);
        let got = p.to_vec().unwrap();
        let mut want: Vec<u8> = Vec::new();
        let total = 91 + 5 + 1 + props.len() as i32;
        want.extend_from_slice(&total.to_be_bytes()); // TOTALSIZE
        want.extend_from_slice(&[0xDA, 0xA3, 0x20, 0xA7]); // MAGICCODE v1
        want.extend_from_slice(&[0x36, 0x10, 0xA6, 0x86]); // BODYCRC crc32("hello")
        want.extend_from_slice(&[0, 0, 0, 3]); // QUEUEID
        want.extend_from_slice(&[0, 0, 0, 7]); // FLAG
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 42]); // QUEUEOFFSET
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xE8]); // PHYSICALOFFSET 1000
        want.extend_from_slice(&[0, 0, 0, 0]); // SYSFLAG
        want.extend_from_slice(&1_700_000_000_123_i64.to_be_bytes()); // BORNTIMESTAMP
        want.extend_from_slice(&[192, 168, 0, 2, 0, 0, 0xC7, 0x38]); // BORNHOST :51000
        want.extend_from_slice(&1_700_000_000_456_i64.to_be_bytes()); // STORETIMESTAMP
        want.extend_from_slice(&[192, 168, 0, 1, 0, 0, 0x2A, 0x9F]); // STOREHOST :10911
        want.extend_from_slice(&[0, 0, 0, 0]); // RECONSUMETIMES
        want.extend_from_slice(&[0; 8]); // PREPARED TRANSACTION OFFSET
        want.extend_from_slice(&[0, 0, 0, 5]); // BODYLENGTH
        want.extend_from_slice(b"hello");
        want.push(1); // TOPICLENGTH (1 byte, v1)
        want.push(b'T');
        want.extend_from_slice(&(props.len() as i16).to_be_bytes());
        want.extend_from_slice(b"TAGS\x01TagA\x02UNIQ_KEY\x01AB\x02");
        assert_eq!(got, want);
        assert_eq!(want.len() as i32, total);
        assert_eq!(scan(&want, 1000, true), Ok(Scan::Record(total as u32)));
    }

    /// The appender's path (tail with a fused CRC, then head) writes the same bytes as the
    /// golden-checked `to_vec`, for every piece size.
    #[test]
    fn fused_crc_encoding_matches_to_vec() {
        let props = encode_properties(&[("TAGS", "TagA"), ("UNIQ_KEY", "AB")]);
        let body: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [
            0, 1, 5, 15, 16, 127, 128, 255, 256, 511, 512, 513, 1024, 2048, 2049, 5000,
        ] {
            let mut p = parts(&body[..len], "T", &props);
            let want = p.to_vec().unwrap();
            for chunk in [1, 16, 100, 512, 2048, body_crc_chunk(len), usize::MAX] {
                p.body_crc = 0;
                let mut got = vec![0u8; want.len()];
                let (head_len, crc) = p.encode_tail_crc(&mut got, chunk);
                assert_eq!(crc, body_crc(&body[..len]), "len {len} chunk {chunk}");
                p.body_crc = crc;
                p.encode_head(&mut got, head_len);
                assert_eq!(got, want, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn v2_and_ipv6_layouts() {
        let topic = "t".repeat(200);
        let mut p = parts(b"xyz", &topic, "");
        p.born_host = "[::1]:9".parse().unwrap();
        p.store_host = "[fe80::1]:10911".parse().unwrap();
        let v = p.to_vec().unwrap();
        assert_eq!(v.len(), 91 + 12 + 12 + 3 + 1 + 200);
        let r = decode_record(&v).unwrap();
        assert_eq!(r.magic, MAGIC_V2);
        assert_eq!(r.sys_flag, SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6);
        assert_eq!(r.topic, topic);
        assert_eq!(r.born_host, p.born_host);
        assert_eq!(r.store_host, p.store_host);
        // Store timestamp moves by 12 with an IPv6 born host.
        assert_eq!(&v[68..76], &p.store_timestamp.to_be_bytes());
    }

    #[test]
    fn blank_and_zero_and_garbage() {
        let mut seg = vec![0u8; 64];
        seg[..8].copy_from_slice(&blank_marker(64));
        assert_eq!(scan(&seg, 0, true), Ok(Scan::EndOfSegment));
        assert_eq!(scan(&[0u8; 16], 0, true), Ok(Scan::End));
        assert!(scan(&[1, 2, 3], 0, true).is_err());
        assert!(
            scan(&blank_marker(10), 0, true).is_err(),
            "blank must fill the segment"
        );
    }

    #[test]
    fn truncated_record_at_every_length_is_rejected() {
        let p = parts(b"some body bytes", "TopicTest", "KEYS\x01k1 k2\x02");
        let v = p.to_vec().unwrap();
        for cut in 0..v.len() {
            let mut torn = v[..cut].to_vec();
            torn.resize(v.len() + 16, 0);
            assert!(
                !matches!(scan(&torn, 1000, true), Ok(Scan::Record(_))),
                "cut at {cut} accepted"
            );
        }
        let mut flipped = v.clone();
        let body_at = 88; // BODY starts at 88 for IPv4 hosts
        flipped[body_at] ^= 1;
        assert!(matches!(
            scan(&flipped, 1000, true),
            Err(RecordError::CrcMismatch { .. })
        ));
        assert!(matches!(
            scan(&v, 999, true),
            Err(RecordError::PhyOffsetMismatch { .. })
        ));
    }

    #[test]
    fn properties_follow_java_rules() {
        let s = encode_properties(&[("TAGS", "a"), ("KEYS", "k1 k2")]);
        assert_eq!(s, "TAGS\u{1}a\u{2}KEYS\u{1}k1 k2\u{2}");
        assert_eq!(property_value(&s, "KEYS"), Some("k1 k2"));
        assert_eq!(property_value(&s, "X"), None);
        let odd = "\u{1}v\u{2}k\u{1}\u{2}a\u{1}b\u{1}c\u{2}nosep\u{2}a\u{1}z";
        assert_eq!(
            decode_properties(odd),
            vec![("a".into(), "b\u{1}c".into()), ("a".into(), "z".into())]
        );
        assert_eq!(property_value(odd, "a"), Some("z"));
    }

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(Ipv4Addr::from(ip).into(), p)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(Ipv6Addr::from(ip).into(), p)),
        ]
    }

    /// The straightforward `str::split` reading of Java's rules, to check the byte scan against.
    fn reference_pairs(s: &str) -> Vec<(&str, &str)> {
        s.split(PROPERTY_SEPARATOR)
            .filter_map(|seg| {
                let (k, v) = seg.split_once(NAME_VALUE_SEPARATOR)?;
                (!k.is_empty() && !v.is_empty()).then_some((k, v))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn record_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            topic in "[a-zA-Z0-9_%|-]{1,300}",
            pairs in proptest::collection::vec(("[A-Z_]{1,8}", "[ -~]{1,16}"), 0..5),
            queue_id in any::<i32>(), flag in any::<i32>(), qoff in any::<i64>(),
            phy in 0i64..i64::MAX, sys_flag in any::<i32>(), born_ts in any::<i64>(),
            store_ts in any::<i64>(), born in arb_addr(), store in arb_addr(),
            reconsume in any::<i32>(), ptx in any::<i64>(),
        ) {
            let props = encode_properties(&pairs);
            let p = RecordParts {
                queue_id, flag, queue_offset: qoff, phy_offset: phy, sys_flag,
                born_timestamp: born_ts, born_host: born, store_timestamp: store_ts,
                store_host: store, reconsume_times: reconsume, prepared_transaction_offset: ptx,
                body_crc: body_crc(&body), body: &body, topic: &topic, properties: &props,
            };
            let v = p.to_vec().unwrap();
            let r = decode_record(&v).unwrap();
            prop_assert_eq!(r.total_size as usize, v.len());
            prop_assert_eq!(r.magic, if topic.len() > 127 { MAGIC_V2 } else { MAGIC_V1 });
            prop_assert_eq!(r.queue_id, queue_id);
            prop_assert_eq!(r.flag, flag);
            prop_assert_eq!(r.queue_offset, qoff);
            prop_assert_eq!(r.phy_offset, phy);
            prop_assert_eq!(r.sys_flag, p.stored_sys_flag());
            prop_assert_eq!(r.born_timestamp, born_ts);
            prop_assert_eq!(r.born_host, born);
            prop_assert_eq!(r.store_timestamp, store_ts);
            prop_assert_eq!(r.store_host, store);
            prop_assert_eq!(r.reconsume_times, reconsume);
            prop_assert_eq!(r.prepared_transaction_offset, ptx);
            prop_assert_eq!(r.body, &body[..]);
            prop_assert_eq!(r.topic, &topic[..]);
            prop_assert_eq!(r.properties, &props[..]);
            prop_assert_eq!(r.body_crc, body_crc(&body));
            prop_assert_eq!(decode_dispatch(&v), Ok(dispatch_fields(&r)));
            let mut seg = v.clone();
            seg.extend_from_slice(&[0u8; 8]);
            prop_assert_eq!(scan(&seg, phy as u64, true), Ok(Scan::Record(v.len() as u32)));
            let back: Vec<(String, String)> = decode_properties(r.properties);
            prop_assert_eq!(back, pairs);
        }

        /// The fused CRC (any piece size) equals crc32fast over the whole body, and the record
        /// bytes equal `to_vec`'s, for random bodies and hosts.
        #[test]
        fn fused_crc_matches_crc32fast(
            body in proptest::collection::vec(any::<u8>(), 0..6000),
            chunk in prop_oneof![1usize..64, 64usize..3000, Just(512usize), Just(2048usize)],
            born in arb_addr(), store in arb_addr(),
        ) {
            let mut p = parts(&body, "TopicTest", "KEYS\u{1}k\u{2}");
            p.born_host = born;
            p.store_host = store;
            let want = p.to_vec().unwrap();
            let mut got = vec![0u8; want.len()];
            let (head_len, crc) = p.encode_tail_crc(&mut got, chunk);
            prop_assert_eq!(crc, crc32fast::hash(&body) & 0x7FFF_FFFF);
            prop_assert_eq!(head_len, p.head_len());
            p.encode_head(&mut got, head_len);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn deferred_crc_scan_agrees_with_scan(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..400, flip in any::<Option<(usize, u8)>>(), phy in 0u64..4,
        ) {
            let p = parts(&body, "TopicTest", "KEYS\u{1}k\u{2}");
            let mut v = p.to_vec().unwrap();
            v.truncate(cut.max(1).min(v.len()));
            v.resize(v.len() + 8, 0);
            if let Some((i, x)) = flip {
                let n = v.len();
                v[i % n] ^= x;
            }
            let phy = 1000 + phy - 1;
            let deferred = scan_deferring_crc(&v, phy).and_then(|(s, pending)| {
                if let Some(pc) = pending {
                    pc.check(&v)?;
                }
                Ok(s)
            });
            prop_assert_eq!(deferred, scan(&v, phy, true));
            prop_assert_eq!(scan_deferring_crc(&v, phy).map(|(s, _)| s), scan(&v, phy, false));
        }

        #[test]
        fn property_scan_matches_split(s in "[ab\u{1}\u{2}\u{e9}]{0,40}", key in "[ab\u{e9}]{1,2}") {
            let want = reference_pairs(&s);
            let got: Vec<(&str, &str)> = property_pairs(&s).collect();
            prop_assert_eq!(&got, &want);
            let last = want.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).next_back();
            prop_assert_eq!(property_value(&s, &key), last);
            let [a, b, k] = property_values(&s, ["a", "b", key.as_str()]);
            prop_assert_eq!(a, property_value(&s, "a"));
            prop_assert_eq!(b, property_value(&s, "b"));
            prop_assert_eq!(k, last);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), phy in any::<u64>()) {
            let _ = decode_record(&bytes);
            let _ = decode_dispatch(&bytes);
            let _ = decode_records(&bytes);
            let _ = scan(&bytes, phy, true);
            let _ = decode_properties(&String::from_utf8_lossy(&bytes));
        }

        /// The word-at-a-time separator scan finds exactly the \x01 and \x02 bytes, in order.
        #[test]
        fn separators_match_a_byte_loop(b in proptest::collection::vec(prop::sample::select(vec![0u8, 1, 2, 3, 0x7f, 0x80, 0x81, 0xff, b'a']), 0..70)) {
            let want: Vec<(usize, u8)> = b.iter().copied().enumerate().filter(|&(_, c)| c == 1 || c == 2).collect();
            prop_assert_eq!(separators(&b), want);
        }

        /// The dispatcher's decoder accepts exactly what `decode_record` accepts, with the same
        /// values and the same error, on valid records with one byte overwritten anywhere (bad
        /// sizes, magics, ports, UTF-8, lengths) and on arbitrary bytes.
        #[test]
        fn dispatch_decode_agrees_with_decode_record(
            topic in "[a-z]{1,8}|[a-z]{128,130}",
            props in "[A-Z\u{1}\u{2}\u{e9}]{0,24}",
            v6 in any::<(bool, bool)>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            noise in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let host = |v6: bool| -> SocketAddr {
                if v6 { "[::1]:10911".parse().unwrap() } else { "10.0.0.1:10911".parse().unwrap() }
            };
            let p = RecordParts {
                queue_id: 3, flag: 0, queue_offset: 7, phy_offset: 4096, sys_flag: 0,
                born_timestamp: 1, born_host: host(v6.0), store_timestamp: 2,
                store_host: host(v6.1), reconsume_times: 0, prepared_transaction_offset: 0,
                body_crc: 0, body: b"body", topic: &topic, properties: &props,
            };
            let mut v = p.to_vec().unwrap();
            let i = at.index(v.len());
            v[i] = byte;
            let full = decode_record(&v).map(|r| dispatch_fields(&r));
            prop_assert_eq!(decode_dispatch(&v), full);
            let full = decode_record(&noise).map(|r| dispatch_fields(&r));
            prop_assert_eq!(decode_dispatch(&noise), full);
        }
    }

    fn dispatch_fields<'a>(r: &RecordView<'a>) -> DispatchView<'a> {
        DispatchView {
            total_size: r.total_size,
            queue_id: r.queue_id,
            queue_offset: r.queue_offset,
            phy_offset: r.phy_offset,
            sys_flag: r.sys_flag,
            store_timestamp: r.store_timestamp,
            topic: r.topic,
            properties: r.properties,
        }
    }
}
