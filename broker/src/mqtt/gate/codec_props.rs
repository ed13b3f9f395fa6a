//! Property tests of the gate's byte work, which faces every client: arbitrary bytes and
//! plausible frames (a valid fixed header over a random body) never panic any parser or
//! translator, and what the gate encodes it parses back unchanged.

use super::codec::{
    encode_subscribe, frame, parse_publish, parse_suback, parse_subscribe, parse_unsubscribe, pkid,
    props, put_varint, FrameStatus,
};
use super::{acl, connect, translate};
use crate::principals::Principal;
use extbus_schema::Role;
use proptest::prelude::*;

/// Runs every parser the gate applies to a client or broker frame over `f`.
fn parse_everything(f: &[u8], header: usize) {
    for v5 in [false, true] {
        let _ = parse_publish(f, header, v5);
        let _ = parse_subscribe(f, header, v5);
        let _ = parse_unsubscribe(f, header, v5);
        let _ = parse_suback(f, header, v5);
    }
    let _ = pkid(f, header);
    let _ = connect::parse_connect(f, header);
    let mut out = Vec::new();
    let _ = translate::up(f, header, &mut out);
    out.clear();
    let _ = translate::down(f, header, &mut out);
}

/// A frame with a correct fixed header around `body`.
fn framed(first: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    put_varint(&mut f, body.len());
    f.extend_from_slice(body);
    f
}

fn principal() -> Principal {
    Principal {
        name: "ext".into(),
        roles: vec![Role::Extension],
        orgs: vec!["acme".into()],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = frame(&buf, 1 << 20);
        for header in 0..buf.len().min(6) {
            parse_everything(&buf, header);
        }
        for p in props(&buf) {
            if p.is_err() {
                break;
            }
        }
    }

    #[test]
    fn plausible_frames_never_panic(first in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..300)) {
        let f = framed(first, &body);
        match frame(&f, 1 << 20) {
            Ok(FrameStatus::Ready { header, total }) => {
                prop_assert_eq!(total, f.len());
                parse_everything(&f, header);
            }
            other => prop_assert!(false, "a whole frame was not found: {:?}", other),
        }
    }

    #[test]
    fn subscribe_round_trips(
        id in any::<u16>(),
        v5 in any::<bool>(),
        filters in prop::collection::vec(("[a-z0-9/+#$]{1,40}", 0u8..3), 1..6),
    ) {
        let props_raw: &[u8] = if v5 { &[0] } else { &[] };
        let mut out = Vec::new();
        encode_subscribe(id, props_raw, filters.iter().map(|(f, o)| (f.as_str(), *o)), &mut out);
        let Ok(FrameStatus::Ready { header, total }) = frame(&out, 1 << 20) else {
            return Err(TestCaseError::fail("encoded SUBSCRIBE is not one frame"));
        };
        prop_assert_eq!(total, out.len());
        let s = parse_subscribe(&out, header, v5).unwrap();
        prop_assert_eq!(s.pkid, id);
        let back: Vec<(String, u8)> = s.filters.iter().map(|(f, o)| (f.to_string(), *o)).collect();
        prop_assert_eq!(back, filters);
    }

    #[test]
    fn acl_checks_never_panic(topic in "\\PC{0,80}", slashes in "[a-z/+#$]{0,40}") {
        let p = principal();
        for t in [topic.as_str(), slashes.as_str()] {
            let _ = acl::may_publish(&p, t);
            let _ = acl::valid_filter(t);
            let _ = acl::strip_share(t);
            let _ = acl::blocked_operation(t);
            let _ = acl::inbox_suffix("ext", t);
        }
    }
}
