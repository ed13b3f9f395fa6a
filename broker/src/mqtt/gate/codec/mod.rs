//! The MQTT 3.1.1 / 5 wire pieces the gate needs: frame boundaries (fixed header and the
//! remaining-length varint), MQTT 5 properties, and (`packets`) views of the packets it
//! inspects and encoders for the packets it makes itself. Pure byte work: nothing here panics
//! on bad input, every parser returns `Malformed` instead.
//!
//! # Why not rumqttd's `protocol` module
//!
//! The vendored rumqttd 0.20 has a full 3.1.1 / 5 codec (`rumqttd::protocol::{v4, v5}`). It was
//! weighed against this module and `translate` and not used, for reasons read off its code
//! and checked against it:
//!
//! - It panics on bytes a client controls. `V5::read_mut` reaches `unreachable!()` for a
//!   CONNACK or UNSUBACK with a body, and a client may send either; the gate must close such a
//!   connection, not lose its task. Those are also two of the broker's packets the gate reads on
//!   the way down (translation to 3.1.1), so the reader cannot serve that direction at all. Its v4 writer and its 3.1.1 CONNACK code mapping hit `unreachable!()` for
//!   packets or codes that have no 3.1.1 form, which is exactly what `translate::down` meets.
//! - It accepts and refuses other frames than the gate does, so swapping it in changes
//!   behaviour. It refuses a QoS 1 PUBLISH with packet id 0, a property that MQTT allows but
//!   not on that packet type, and SUBSCRIBE options with QoS 3, all of which the gate now
//!   leaves to the broker; its 3.1.1 SUBACK writer puts MQTT 5 reason codes (0x87, 0x97) on
//!   the wire where 3.1.1 allows only 0, 1, 2 and 0x80 (`translate` maps them).
//! - It decodes into owned structs (`Bytes` split off the buffer, `String` properties, a
//!   `Vec` of user properties) and re-encodes from them in its own property order. The gate
//!   forwards almost every frame unchanged after a look at a few fields, and where it rewrites
//!   one (a SUBSCRIBE with refused filters dropped, a SUBACK merged) it copies the property
//!   block byte for byte, so properties it does not know about still reach the broker intact.
//!   Decoding would cost allocations per PUBLISH on the hot path for no gain.
//! - The one piece that would fit, `v5::check` for frame boundaries, cannot tell "the
//!   remaining length is not all here" from "one byte of the frame is missing" (both are
//!   `InsufficientBytes(1)`), while the relay uses the known total to reserve its buffer.
//!
//! So the hand-written part stays, kept to what the gate reads and writes; `frame` reads its
//! varint through `Reader` rather than a second copy of the loop. The proptests in
//! `codec_props` hold every parser and translator here to "no panic" on arbitrary bytes.

pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

/// MQTT 5 property ids the gate looks at.
const PROP_RESPONSE_TOPIC: u8 = 0x08;
const PROP_CORRELATION_DATA: u8 = 0x09;
pub(super) const PROP_TOPIC_ALIAS_MAX: u8 = 0x22;
const PROP_TOPIC_ALIAS: u8 = 0x23;

/// A frame or field that does not follow the protocol; the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The frame ends before the field: at the fixed header, more bytes may still come.
const TRUNCATED: Malformed = Malformed("truncated");

/// Why a frame boundary could not be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The announced remaining length is above the cap; the frame is not read.
    TooLarge(usize),
    Malformed,
}

/// Where the next frame in `buf` ends: `Ready` once the whole frame is buffered, `Partial`
/// while more bytes are needed. Only the fixed header is looked at.
pub fn frame(buf: &[u8], cap: usize) -> Result<FrameStatus, FrameError> {
    let mut r = Reader::new(buf, 1);
    let len = match r.varint() {
        Ok(len) => len,
        // The remaining length itself is not all here yet.
        Err(TRUNCATED) => return Ok(FrameStatus::Partial(None)),
        Err(_) => return Err(FrameError::Malformed),
    };
    if len > cap {
        return Err(FrameError::TooLarge(len));
    }
    let (header, total) = (r.pos, r.pos + len);
    Ok(if buf.len() >= total {
        FrameStatus::Ready { header, total }
    } else {
        FrameStatus::Partial(Some(total))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    Ready {
        header: usize,
        total: usize,
    },
    /// Not complete yet; the total frame length once it is known.
    Partial(Option<usize>),
}

/// Appends the remaining-length varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            break;
        }
    }
}

pub(super) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(super) fn put_bin(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// A forward-only reader over a frame's bytes.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }
    pub fn u8(&mut self) -> Result<u8, Malformed> {
        let b = *self.buf.get(self.pos).ok_or(TRUNCATED)?;
        self.pos += 1;
        Ok(b)
    }
    pub fn u16(&mut self) -> Result<u16, Malformed> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed("length"))?;
        let s = self.buf.get(self.pos..end).ok_or(TRUNCATED)?;
        self.pos = end;
        Ok(s)
    }
    pub fn bin(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bin()?).map_err(|_| Malformed("string is not UTF-8"))
    }
    pub fn varint(&mut self) -> Result<usize, Malformed> {
        let mut v = 0usize;
        for i in 0..4 {
            let b = self.u8()?;
            v |= ((b & 0x7f) as usize) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint"))
    }
    /// A v5 property block: its bytes, without the length prefix.
    pub fn props(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.varint()?;
        self.take(n)
    }
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}

/// One MQTT 5 property: its id, its whole encoding (id included) and its value bytes
/// (the content for strings and binary data, the raw bytes for integers).
#[derive(Debug, Clone, Copy)]
pub struct Prop<'a> {
    pub id: u8,
    pub raw: &'a [u8],
    pub value: &'a [u8],
}

/// Iterates a property block; an unknown id or a truncated value yields `Malformed`.
pub fn props(block: &[u8]) -> impl Iterator<Item = Result<Prop<'_>, Malformed>> {
    let mut r = Reader::new(block, 0);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || r.pos >= block.len() {
            return None;
        }
        let start = r.pos;
        let item = (|| {
            let id = r.u8()?;
            let value = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => r.take(1)?,
                0x13 | 0x21 | 0x22 | 0x23 => r.take(2)?,
                0x02 | 0x11 | 0x18 | 0x27 => r.take(4)?,
                0x0B => {
                    let s = r.pos;
                    r.varint()?;
                    &block[s..r.pos]
                }
                0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => r.bin()?,
                0x26 => {
                    let s = r.pos;
                    r.bin()?;
                    r.bin()?;
                    &block[s..r.pos]
                }
                _ => return Err(Malformed("unknown property")),
            };
            Ok(Prop {
                id,
                raw: &block[start..r.pos],
                value,
            })
        })();
        failed = item.is_err();
        Some(item)
    })
}

mod packets;
pub use packets::*;

#[cfg(test)]
mod tests;
