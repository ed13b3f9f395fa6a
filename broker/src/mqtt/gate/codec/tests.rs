//! Unit tests of the codec: frame boundaries, packet views and the encoders.

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
