//! 3.1.1 <-> 5 frame translation. rumqttd's 3.1.1 listener panics (and drops the connection)
//! when it has to forward a publish that carries MQTT 5 properties, which every coordinator
//! reply does; so every gated connection speaks MQTT 5 to the broker and the gate translates
//! frames for 3.1.1 clients here. Pure byte work; why not through rumqttd's own v4 / v5
//! codecs is said in `codec`.

use super::codec::{
    encode_ack, encode_suback, parse_publish, parse_suback, pkid, put_bin, put_varint, Malformed,
    Reader, CONNACK, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE,
    UNSUBACK, UNSUBSCRIBE,
};

/// Appends `f`'s fixed header byte, a remaining length one larger, `f`'s variable header up
/// to `split`, an empty property block, and the rest.
fn with_empty_props(f: &[u8], header: usize, split: usize, out: &mut Vec<u8>) {
    out.push(f[0]);
    put_varint(out, f.len() - header + 1);
    out.extend_from_slice(&f[header..split]);
    out.push(0);
    out.extend_from_slice(&f[split..]);
}

/// A 3.1.1 client frame as MQTT 5: PUBLISH, SUBSCRIBE and UNSUBSCRIBE gain an empty property
/// block; every other packet a client may send is the same in both.
pub fn up(f: &[u8], header: usize, out: &mut Vec<u8>) -> Result<(), Malformed> {
    let b0 = *f.first().ok_or(Malformed("empty frame"))?;
    match b0 >> 4 {
        PUBLISH => {
            let qos = (b0 >> 1) & 0x03;
            let mut r = Reader::new(f, header);
            r.bin()?;
            if qos > 0 {
                r.u16()?;
            }
            with_empty_props(f, header, r.pos, out);
        }
        SUBSCRIBE | UNSUBSCRIBE => {
            let mut r = Reader::new(f, header);
            r.u16()?;
            with_empty_props(f, header, r.pos, out);
        }
        _ => out.extend_from_slice(f),
    }
    Ok(())
}

/// 3.1.1 CONNACK return code for an MQTT 5 reason code.
fn connack_code(reason: u8) -> u8 {
    match reason {
        0 => 0,
        0x84 => 1,
        0x85 => 2,
        0x86 => 4,
        0x87 | 0x8a => 5,
        _ => 3,
    }
}

/// 3.1.1 SUBACK return code for an MQTT 5 reason code.
pub fn suback_code(reason: u8) -> u8 {
    if reason <= 2 {
        reason
    } else {
        0x80
    }
}

/// An MQTT 5 broker frame as 3.1.1. `Ok(false)`: the packet has no 3.1.1 form (a server
/// DISCONNECT or AUTH), so the connection is closed instead.
pub fn down(f: &[u8], header: usize, out: &mut Vec<u8>) -> Result<bool, Malformed> {
    let b0 = *f.first().ok_or(Malformed("empty frame"))?;
    let kind = b0 >> 4;
    match kind {
        CONNACK => {
            let mut r = Reader::new(f, header);
            let flags = r.u8()?;
            let code = r.u8()?;
            out.extend_from_slice(&[CONNACK << 4, 2, flags & 0x01, connack_code(code)]);
        }
        PUBLISH => {
            let p = parse_publish(f, header, true)?;
            let id = if p.qos > 0 { 2 } else { 0 };
            out.push(b0);
            put_varint(out, 2 + p.topic.len() + id + p.payload.len());
            put_bin(out, p.topic);
            if p.qos > 0 {
                out.extend_from_slice(&p.pkid.to_be_bytes());
            }
            out.extend_from_slice(p.payload);
        }
        PUBACK | PUBREC | PUBREL | PUBCOMP => encode_ack(kind, pkid(f, header)?, None, out),
        SUBACK => {
            let a = parse_suback(f, header, true)?;
            let codes: Vec<u8> = a.codes.iter().map(|&c| suback_code(c)).collect();
            encode_suback(false, a.pkid, &[], &codes, out);
        }
        UNSUBACK => {
            let [hi, lo] = pkid(f, header)?.to_be_bytes();
            out.extend_from_slice(&[UNSUBACK << 4, 2, hi, lo]);
        }
        PINGRESP => out.extend_from_slice(f),
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::gate::codec::{encode_subscribe, frame, FrameStatus};

    fn header(f: &[u8]) -> usize {
        match frame(f, usize::MAX).unwrap() {
            FrameStatus::Ready { header, total } => {
                assert_eq!(total, f.len());
                header
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn publish_round_trip() {
        // 3.1.1 QoS 1 publish "a/b" pkid 7 "hi"
        let v4 = [0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i'];
        let mut v5 = Vec::new();
        up(&v4, 2, &mut v5).unwrap();
        assert_eq!(v5, [0x32, 10, 0, 3, b'a', b'/', b'b', 0, 7, 0, b'h', b'i']);
        let p = parse_publish(&v5, header(&v5), true).unwrap();
        assert_eq!((p.topic, p.pkid, p.payload), (&b"a/b"[..], 7, &b"hi"[..]));
        let mut back = Vec::new();
        assert!(down(&v5, 2, &mut back).unwrap());
        assert_eq!(back, v4);
        // QoS 0 with properties on the way down: they are dropped.
        let v5 = [0x30, 11, 0, 1, b'x', 5, 0x09, 0, 2, b'c', b'd', b'p', b'q'];
        let mut v4 = Vec::new();
        down(&v5, 2, &mut v4).unwrap();
        assert_eq!(v4, [0x30, 5, 0, 1, b'x', b'p', b'q']);
    }

    #[test]
    fn big_publish_changes_the_length_size() {
        let mut v4 = vec![0x30];
        put_varint(&mut v4, 127);
        v4.extend_from_slice(&[0, 1, b't']);
        v4.extend(std::iter::repeat_n(b'x', 124));
        assert_eq!(v4.len(), 129);
        let mut v5 = Vec::new();
        up(&v4, 2, &mut v5).unwrap();
        assert_eq!(header(&v5), 3);
        let mut back = Vec::new();
        down(&v5, 3, &mut back).unwrap();
        assert_eq!(back, v4);
    }

    #[test]
    fn subscribe_acks_and_others() {
        let mut v4 = Vec::new();
        encode_subscribe(3, &[], [("a/#", 1u8)].into_iter(), &mut v4);
        let mut v5 = Vec::new();
        up(&v4, 2, &mut v5).unwrap();
        let mut expect = Vec::new();
        encode_subscribe(3, &[0], [("a/#", 1u8)].into_iter(), &mut expect);
        assert_eq!(v5, expect);
        let unsub = [0xa2, 5, 0, 4, 0, 1, b'a'];
        let mut v5 = Vec::new();
        up(&unsub, 2, &mut v5).unwrap();
        assert_eq!(v5, [0xa2, 6, 0, 4, 0, 0, 1, b'a']);
        let mut out = Vec::new();
        for f in [&[0x40u8, 2, 0, 1][..], &[0xc0, 0], &[0xe0, 0]] {
            out.clear();
            up(f, 2, &mut out).unwrap();
            assert_eq!(out, f);
        }
        let cases: [(&[u8], &[u8]); 6] = [
            (&[0x20, 6, 1, 0, 3, 0x22, 0x10, 0], &[0x20, 2, 1, 0]),
            (&[0x20, 3, 0, 0x86, 0], &[0x20, 2, 0, 4]),
            (&[0x40, 4, 0, 9, 0x10, 0], &[0x40, 2, 0, 9]),
            (&[0x62, 2, 0, 9], &[0x62, 2, 0, 9]),
            (
                &[0x90, 6, 0, 9, 0, 1, 0x87, 2],
                &[0x90, 5, 0, 9, 1, 0x80, 2],
            ),
            (&[0xb0, 4, 0, 9, 0, 0], &[0xb0, 2, 0, 9]),
        ];
        for (v5, v4) in cases {
            out.clear();
            assert!(down(v5, 2, &mut out).unwrap());
            assert_eq!(out, v4, "{v5:?}");
        }
        assert!(!down(&[0xe0, 2, 0x8b, 0], 2, &mut out).unwrap());
        assert!(down(&[0x30, 3, 0, 5], 2, &mut out).is_err());
        assert!(up(&[0x32, 3, 0, 1, b'x'], 2, &mut out).is_err());
    }
}
