//! The MQTT 3.1.1 / 5 wire pieces the gate needs: frame boundaries (fixed header and the
//! remaining-length varint), MQTT 5 properties, views of the packets it inspects (PUBLISH,
//! SUBSCRIBE, SUBACK) and encoders for the packets it makes itself. Pure byte work: nothing
//! here panics on bad input, every parser returns `Malformed` instead.

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
    if buf.len() < 2 {
        return Ok(FrameStatus::Partial(None));
    }
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(FrameStatus::Partial(None));
        };
        len |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            if len > cap {
                return Err(FrameError::TooLarge(len));
            }
            let header = 2 + i;
            let total = header + len;
            return Ok(if buf.len() >= total {
                FrameStatus::Ready { header, total }
            } else {
                FrameStatus::Partial(Some(total))
            });
        }
    }
    Err(FrameError::Malformed)
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
        let b = *self.buf.get(self.pos).ok_or(Malformed("truncated"))?;
        self.pos += 1;
        Ok(b)
    }
    pub fn u16(&mut self) -> Result<u16, Malformed> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed("length"))?;
        let s = self.buf.get(self.pos..end).ok_or(Malformed("truncated"))?;
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

/// A view of a PUBLISH.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    pub qos: u8,
    pub topic: &'a [u8],
    pub pkid: u16,
    pub topic_alias: Option<u16>,
    pub correlation_data: Option<&'a [u8]>,
    pub response_topic: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

pub fn parse_publish(frame: &[u8], header: usize, v5: bool) -> Result<Publish<'_>, Malformed> {
    let b0 = *frame.first().ok_or(Malformed("empty frame"))?;
    let qos = (b0 >> 1) & 0x03;
    if qos == 3 {
        return Err(Malformed("PUBLISH QoS 3"));
    }
    let mut r = Reader::new(frame, header);
    let topic = r.bin()?;
    let pkid = if qos > 0 { r.u16()? } else { 0 };
    let mut topic_alias = None;
    let mut correlation_data = None;
    let mut response_topic = None;
    if v5 {
        for p in props(r.props()?) {
            let p = p?;
            match p.id {
                PROP_TOPIC_ALIAS => {
                    topic_alias = Some(u16::from_be_bytes([p.value[0], p.value[1]]))
                }
                PROP_CORRELATION_DATA => correlation_data = Some(p.value),
                PROP_RESPONSE_TOPIC => response_topic = Some(p.value),
                _ => {}
            }
        }
    }
    Ok(Publish {
        qos,
        topic,
        pkid,
        topic_alias,
        correlation_data,
        response_topic,
        payload: r.rest(),
    })
}

/// The packet identifier of an ack-like packet (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK).
pub fn pkid(frame: &[u8], header: usize) -> Result<u16, Malformed> {
    Reader::new(frame, header).u16()
}

/// A view of a SUBSCRIBE.
#[derive(Debug, Clone)]
pub struct Subscribe<'a> {
    pub pkid: u16,
    /// v5 properties as encoded (length prefix included); empty for 3.1.1.
    pub props_raw: &'a [u8],
    /// Each filter with its options byte.
    pub filters: Vec<(&'a str, u8)>,
}

pub fn parse_subscribe(frame: &[u8], header: usize, v5: bool) -> Result<Subscribe<'_>, Malformed> {
    let mut r = Reader::new(frame, header);
    let pkid = r.u16()?;
    let props_start = r.pos;
    if v5 {
        r.props()?;
    }
    let props_raw = &frame[props_start..r.pos];
    let mut filters = Vec::new();
    while !r.rest().is_empty() {
        let f = r.str()?;
        let opts = r.u8()?;
        filters.push((f, opts));
    }
    if filters.is_empty() {
        return Err(Malformed("SUBSCRIBE without filters"));
    }
    Ok(Subscribe {
        pkid,
        props_raw,
        filters,
    })
}

pub fn encode_subscribe<'a>(
    pkid: u16,
    props_raw: &[u8],
    filters: impl Iterator<Item = (&'a str, u8)> + Clone,
    out: &mut Vec<u8>,
) {
    let len = 2 + props_raw.len() + filters.clone().map(|(f, _)| 3 + f.len()).sum::<usize>();
    out.push((SUBSCRIBE << 4) | 0x02);
    put_varint(out, len);
    out.extend_from_slice(&pkid.to_be_bytes());
    out.extend_from_slice(props_raw);
    for (f, opts) in filters {
        put_bin(out, f.as_bytes());
        out.push(opts);
    }
}

/// An UNSUBSCRIBE's packet id and filters.
pub fn parse_unsubscribe(
    frame: &[u8],
    header: usize,
    v5: bool,
) -> Result<(u16, Vec<&str>), Malformed> {
    let mut r = Reader::new(frame, header);
    let pkid = r.u16()?;
    if v5 {
        r.props()?;
    }
    let mut filters = Vec::new();
    while !r.rest().is_empty() {
        filters.push(r.str()?);
    }
    if filters.is_empty() {
        return Err(Malformed("UNSUBSCRIBE without filters"));
    }
    Ok((pkid, filters))
}

/// An UNSUBACK (MQTT 5: success for each of `filters`).
pub fn encode_unsuback(v5: bool, pkid: u16, filters: usize, out: &mut Vec<u8>) {
    out.push(UNSUBACK << 4);
    let [hi, lo] = pkid.to_be_bytes();
    if v5 {
        put_varint(out, 3 + filters);
        out.extend_from_slice(&[hi, lo, 0]);
        out.resize(out.len() + filters, 0);
    } else {
        out.extend_from_slice(&[2, hi, lo]);
    }
}

/// A view of a SUBACK.
#[derive(Debug, Clone, Copy)]
pub struct SubAck<'a> {
    pub pkid: u16,
    pub props_raw: &'a [u8],
    pub codes: &'a [u8],
}

pub fn parse_suback(frame: &[u8], header: usize, v5: bool) -> Result<SubAck<'_>, Malformed> {
    let mut r = Reader::new(frame, header);
    let pkid = r.u16()?;
    let props_start = r.pos;
    if v5 {
        r.props()?;
    }
    Ok(SubAck {
        pkid,
        props_raw: &frame[props_start..r.pos],
        codes: r.rest(),
    })
}

/// A SUBACK; `props_raw` is the v5 property block with its length (empty: none, or 3.1.1).
pub fn encode_suback(v5: bool, pkid: u16, props_raw: &[u8], codes: &[u8], out: &mut Vec<u8>) {
    let props: &[u8] = match (v5, props_raw.is_empty()) {
        (true, true) => &[0],
        (true, false) => props_raw,
        (false, _) => &[],
    };
    out.push(SUBACK << 4);
    put_varint(out, 2 + props.len() + codes.len());
    out.extend_from_slice(&pkid.to_be_bytes());
    out.extend_from_slice(props);
    out.extend_from_slice(codes);
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP; with a reason code only when one is given (MQTT 5).
pub fn encode_ack(kind: u8, pkid: u16, reason: Option<u8>, out: &mut Vec<u8>) {
    out.push((kind << 4) | if kind == PUBREL { 0x02 } else { 0 });
    let [hi, lo] = pkid.to_be_bytes();
    match reason {
        Some(code) => out.extend_from_slice(&[4, hi, lo, code, 0]),
        None => out.extend_from_slice(&[2, hi, lo]),
    }
}

/// An MQTT 5 PUBACK or PUBREC with a reason code and a Reason String property.
pub fn encode_ack_with_reason(kind: u8, pkid: u16, code: u8, reason: &str, out: &mut Vec<u8>) {
    let props = 3 + reason.len();
    out.push(kind << 4);
    put_varint(out, 3 + varint_len(props) + props);
    out.extend_from_slice(&pkid.to_be_bytes());
    out.push(code);
    put_varint(out, props);
    out.push(0x1f);
    put_bin(out, reason.as_bytes());
}

/// An MQTT 5 DISCONNECT with a reason code.
pub fn encode_disconnect_v5(reason: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&[DISCONNECT << 4, 2, reason, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_boundaries() {
        assert_eq!(frame(&[], 10).unwrap(), FrameStatus::Partial(None));
        assert_eq!(frame(&[0x30], 10).unwrap(), FrameStatus::Partial(None));
        assert_eq!(
            frame(&[0x30, 3, 1], 10).unwrap(),
            FrameStatus::Partial(Some(5))
        );
        assert_eq!(
            frame(&[0xc0, 0, 0x30], 10).unwrap(),
            FrameStatus::Ready {
                header: 2,
                total: 2
            }
        );
        assert_eq!(
            frame(&[0x30, 0x80], 1000).unwrap(),
            FrameStatus::Partial(None)
        );
        let big = [0x30, 0x80, 0x80, 0x01];
        assert_eq!(frame(&big, 1000), Err(FrameError::TooLarge(16_384)));
        assert_eq!(
            frame(&[0x30, 0xff, 0xff, 0xff, 0xff], usize::MAX),
            Err(FrameError::Malformed)
        );
        for v in [
            0,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            268_435_455,
        ] {
            let mut out = vec![0x30];
            put_varint(&mut out, v);
            assert_eq!(out.len() - 1, varint_len(v));
            out.resize(out.len() + v, 0);
            assert_eq!(
                frame(&out, usize::MAX).unwrap(),
                FrameStatus::Ready {
                    header: 1 + varint_len(v),
                    total: out.len()
                }
            );
        }
    }

    #[test]
    fn publish_views() {
        // v4 QoS 1
        let f = [0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i'];
        let p = parse_publish(&f, 2, false).unwrap();
        assert_eq!(
            (p.qos, p.topic, p.pkid, p.payload),
            (1, &b"a/b"[..], 7, &b"hi"[..])
        );
        // v5 QoS 0 with alias and correlation data
        let f = [
            0x30, 15, 0, 1, b'x', 8, 0x23, 0, 4, 0x09, 0, 2, b'c', b'd', b'p', b'a', b'y',
        ];
        let p = parse_publish(&f, 2, true).unwrap();
        assert_eq!(p.topic_alias, Some(4));
        assert_eq!(p.correlation_data, Some(&b"cd"[..]));
        assert_eq!(p.payload, b"pay");
        assert!(parse_publish(&[0x36, 0], 2, false).is_err());
        for n in 2..f.len() {
            let _ = parse_publish(&f[..n], 2, true);
        }
        assert!(parse_publish(&[0x30, 4, 0, 1, b'x', 1, 0x7f], 2, true).is_err());
    }

    #[test]
    fn subscribe_rewrite_and_suback() {
        let mut f = Vec::new();
        encode_subscribe(9, &[0], [("a/#", 1u8), ("b", 0u8)].into_iter(), &mut f);
        let s = parse_subscribe(&f, 2, true).unwrap();
        assert_eq!(s.pkid, 9);
        assert_eq!(s.props_raw, &[0]);
        assert_eq!(s.filters, vec![("a/#", 1), ("b", 0)]);
        let mut out = Vec::new();
        encode_suback(true, 9, &[], &[1, 0x87], &mut out);
        assert_eq!(out, vec![0x90, 5, 0, 9, 0, 1, 0x87]);
        let a = parse_suback(&out, 2, true).unwrap();
        assert_eq!((a.pkid, a.codes), (9, &[1, 0x87][..]));
        out.clear();
        encode_suback(false, 9, &[], &[0x80], &mut out);
        assert_eq!(out, vec![0x90, 3, 0, 9, 0x80]);
        assert!(parse_subscribe(&[0x82, 2, 0, 1], 2, false).is_err());
        let unsub = [0xa2, 9, 0, 4, 0, 0, 1, b'a', 0, 1, b'b'];
        assert_eq!(
            parse_unsubscribe(&unsub, 2, true).map(|(p, f)| (p, f.len())),
            Ok((4, 2))
        );
        assert!(parse_unsubscribe(&unsub[..7], 2, true).is_err());
        assert!(parse_unsubscribe(&unsub[..6], 2, true).is_err());
        out.clear();
        encode_unsuback(true, 4, 2, &mut out);
        assert_eq!(out, vec![0xb0, 5, 0, 4, 0, 0, 0]);
        out.clear();
        encode_unsuback(false, 4, 2, &mut out);
        assert_eq!(out, vec![0xb0, 2, 0, 4]);
    }

    #[test]
    fn acks() {
        let mut out = Vec::new();
        encode_ack(PUBACK, 0x0102, None, &mut out);
        encode_ack(PUBREC, 3, Some(0x87), &mut out);
        encode_ack(PUBREL, 4, None, &mut out);
        encode_disconnect_v5(0x87, &mut out);
        assert_eq!(
            out,
            vec![0x40, 2, 1, 2, 0x50, 4, 0, 3, 0x87, 0, 0x62, 2, 0, 4, 0xe0, 2, 0x87, 0]
        );
        out.clear();
        encode_ack_with_reason(PUBACK, 5, 0x83, "big", &mut out);
        assert_eq!(
            out,
            vec![0x40, 10, 0, 5, 0x83, 6, 0x1f, 0, 3, b'b', b'i', b'g']
        );
        let ids: Vec<u8> = props(&out[6..]).map(|p| p.unwrap().id).collect();
        assert_eq!(ids, vec![0x1f]);
    }
}
