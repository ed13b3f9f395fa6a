//! Views of the packets the gate inspects (PUBLISH, SUBSCRIBE, UNSUBSCRIBE, SUBACK, acks) and
//! encoders for the packets it makes itself.

use super::{
    props, put_bin, put_varint, varint_len, Malformed, Reader, DISCONNECT, PROP_CORRELATION_DATA,
    PROP_RESPONSE_TOPIC, PROP_TOPIC_ALIAS, PUBREL, SUBACK, SUBSCRIBE, UNSUBACK,
};

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
