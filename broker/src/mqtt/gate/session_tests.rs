//! Frame-level tests of `Session`: bytes in, bytes out, no sockets. The network tests in
//! `broker/tests/gate.rs` cover the same rules end to end.

use super::codec::{encode_ack, encode_subscribe, frame, FrameStatus, PUBACK, PUBCOMP, PUBREL};
use super::report::Reporter;
use super::session::{Session, Step};
use super::{Gate, Internal};
use crate::metrics::Metrics;
use crate::mqtt::InboundPublish;
use crate::notices::GateNotice;
use crate::principals::{Principal, Principals};
use crate::registry::{Registration, Registry};
use extbus_schema::Role;
use std::sync::Arc;
use tokio::sync::mpsc;

struct Rig {
    s: Session,
    notices: mpsc::Receiver<GateNotice>,
    commands: mpsc::Receiver<InboundPublish>,
    _dir: tempfile::TempDir,
}

fn rig(name: &str, roles: &[Role], v5: bool) -> Rig {
    rig_with_queue(name, roles, v5, 64)
}

fn rig_with_queue(name: &str, roles: &[Role], v5: bool, queue: usize) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::new());
    let mut reg = Registration::default();
    reg.operations.insert("vapp.instantiate".into());
    registry.set("ext", reg);
    let (tx, notices) = mpsc::channel(16);
    let metrics = Arc::new(Metrics::new());
    let internal = Internal {
        v4: "127.0.0.1:1".parse().unwrap(),
        v5: "127.0.0.1:1".parse().unwrap(),
        token: "t".into(),
    };
    let (commands_tx, commands) = mpsc::channel(queue);
    let gate = Gate::new(
        true,
        1024,
        std::time::Duration::from_secs(10),
        internal,
        commands_tx,
        crate::auth::Verifier::with_defaults(
            Arc::new(Principals::open(dir.path()).unwrap()),
            metrics.clone(),
        ),
        registry,
        metrics.clone(),
        Reporter {
            metrics,
            notices: tx,
        },
        Default::default(),
    );
    let p = Principal {
        name: name.into(),
        roles: roles.to_vec(),
        orgs: vec!["*".into()],
    };
    let mut s = Session::new(gate, p, "cid".into(), v5, true);
    let (mut c, mut b) = (Vec::new(), Vec::new());
    s.on_broker(&[0x20, 3, 0, 0, 0], 2, &mut c, &mut b);
    Rig {
        s,
        notices,
        commands,
        _dir: dir,
    }
}

fn header(f: &[u8]) -> usize {
    match frame(f, usize::MAX).unwrap() {
        FrameStatus::Ready { header, .. } => header,
        s => panic!("{s:?}"),
    }
}

impl Rig {
    /// A client frame: (step, to broker, to client).
    fn client(&mut self, f: &[u8]) -> (Step, Vec<u8>, Vec<u8>) {
        let (mut b, mut c) = (Vec::new(), Vec::new());
        let step = self.s.on_client(f, header(f), &mut b, &mut c);
        (step, b, c)
    }
    /// A broker frame: (step, to client, to broker).
    fn broker(&mut self, f: &[u8]) -> (Step, Vec<u8>, Vec<u8>) {
        let (mut c, mut b) = (Vec::new(), Vec::new());
        let step = self.s.on_broker(f, header(f), &mut c, &mut b);
        (step, c, b)
    }
}

fn publish(qos: u8, topic: &str, pkid: u16, props: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if let Some(p) = props {
        body.push(p.len() as u8);
        body.extend_from_slice(p);
    }
    body.extend_from_slice(payload);
    let mut f = vec![0x30 | (qos << 1)];
    super::codec::put_varint(&mut f, body.len());
    f.extend_from_slice(&body);
    f
}

fn subscribe(v5: bool, pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut f = Vec::new();
    let props: &[u8] = if v5 { &[0] } else { &[] };
    encode_subscribe(pkid, props, filters.iter().map(|f| (*f, 1u8)), &mut f);
    f
}

fn puback(pkid: u16) -> Vec<u8> {
    let mut f = Vec::new();
    encode_ack(PUBACK, pkid, None, &mut f);
    f
}

#[test]
fn inbox_publishes_go_to_the_coordinator_not_the_broker() {
    for v5 in [false, true] {
        let mut r = rig("plat", &[Role::Platform], v5);
        let props: Option<&[u8]> = v5.then_some(&[0x09, 0, 2, b'c', b'd', 0x08, 0, 1, b'r']);
        let (step, b, c) = r.client(&publish(1, "extbus/in/plat/events", 5, props, b"{}"));
        assert_eq!(step, Step::Go);
        assert!(b.is_empty(), "v5 {v5}: the broker never sees a command");
        assert_eq!(c, puback(5), "v5 {v5}: the gate acks it");
        let m = r.commands.try_recv().expect("handed to the coordinator");
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            ("extbus/in/plat/events", &b"{}"[..])
        );
        assert_eq!(m.correlation_data.as_deref(), v5.then_some(&b"cd"[..]));
        assert_eq!(m.response_topic.as_deref(), v5.then_some("r"));
        // QoS 0 is handed over without an ack.
        let (_, b, c) = r.client(&publish(
            0,
            "extbus/in/plat/events",
            0,
            v5.then_some(&[]),
            b"q0",
        ));
        assert!(b.is_empty() && c.is_empty());
        assert_eq!(&r.commands.try_recv().unwrap().payload[..], b"q0");
    }
}

#[test]
fn qos2_commands_are_completed_by_the_gate() {
    let mut r = rig("plat", &[Role::Platform], true);
    let (_, b, c) = r.client(&publish(2, "extbus/in/plat/events", 4, Some(&[]), b"{}"));
    assert!(b.is_empty());
    assert_eq!(c, [0x50, 2, 0, 4]);
    let mut rel = Vec::new();
    encode_ack(PUBREL, 4, None, &mut rel);
    let (_, b, c) = r.client(&rel);
    let mut comp = Vec::new();
    encode_ack(PUBCOMP, 4, None, &mut comp);
    assert_eq!((b.len(), c), (0, comp));
    assert!(r.commands.try_recv().is_ok());
}

#[tokio::test]
async fn a_full_command_queue_holds_the_client_until_there_is_room() {
    let mut r = rig_with_queue("plat", &[Role::Platform], true, 1);
    let (step, _, c) = r.client(&publish(1, "extbus/in/plat/a", 1, Some(&[]), b"1"));
    assert_eq!((step, c), (Step::Go, puback(1)));
    let (step, b, c) = r.client(&publish(1, "extbus/in/plat/b", 2, Some(&[]), b"2"));
    assert_eq!(step, Step::Hold, "no room: the connection stops reading");
    assert!(
        b.is_empty() && c.is_empty(),
        "nothing is acked before it is handed over"
    );
    assert!(r.s.holding());
    assert_eq!(&r.commands.recv().await.unwrap().payload[..], b"1");
    let permit = r.s.gate().commands.clone().reserve_owned().await.unwrap();
    let mut c = Vec::new();
    r.s.release(permit, &mut c);
    assert_eq!(c, puback(2));
    assert!(!r.s.holding());
    assert_eq!(&r.commands.recv().await.unwrap().payload[..], b"2");
}

#[test]
fn refused_publishes() {
    let mut r = rig("plat", &[Role::Platform], true);
    let (step, b, c) = r.client(&publish(1, "extbus/in/other/x", 9, Some(&[]), b"x"));
    assert_eq!((step, b.is_empty()), (Step::Go, true));
    assert_eq!((c[0], &c[2..5]), (0x40, &[0, 9, 0x87][..]));
    let (step, _, c) = r.client(&publish(0, "extbus/events/a/b/c", 0, Some(&[]), b"x"));
    assert_eq!((step, c), (Step::Close, vec![0xe0, 2, 0x87, 0]));
    assert!(matches!(
        r.notices.try_recv(),
        Ok(GateNotice::Denied {
            action: "publish",
            ..
        })
    ));
    let mut v4 = rig("plat", &[Role::Platform], false);
    let (step, b, c) = v4.client(&publish(1, "extbus/in/other/x", 9, None, b"x"));
    assert_eq!(
        (step, b.is_empty(), c.is_empty()),
        (Step::Close, true, true)
    );
}

#[test]
fn mixed_subscribe_is_rewritten_and_its_suback_spliced() {
    for v5 in [false, true] {
        let mut r = rig("plat", &[Role::Platform], v5);
        let f = subscribe(v5, 7, &["extbus/events/#", "extbus/out/plat/#", "#"]);
        let (_, b, c) = r.client(&f);
        assert!(c.is_empty());
        assert_eq!(b, subscribe(true, 7, &["extbus/out/plat/#"]));
        let (_, c, _) = r.broker(&[0x90, 4, 0, 7, 0, 1]);
        let no = if v5 { 0x87 } else { 0x80 };
        let mut want = vec![0x90, 0, 0, 7];
        if v5 {
            want.push(0);
        }
        want.extend_from_slice(&[no, 1, no]);
        want[1] = (want.len() - 2) as u8;
        assert_eq!(c, want, "v5: {v5}");
        // All refused: the gate answers itself.
        let (_, b, c) = r.client(&subscribe(v5, 8, &["#"]));
        assert!(b.is_empty());
        assert_eq!(c.last(), Some(&no));
    }
    // `$` filters are refused even for admins (rumqttd drops such connections).
    let mut admin = rig("root", &[Role::Admin], true);
    let (_, b, c) = admin.client(&subscribe(true, 1, &["$SYS/#"]));
    assert_eq!((b.len(), c), (0, vec![0x90, 4, 0, 1, 0, 0x87]));
}

#[test]
fn oversized_qos2_is_answered_by_the_gate() {
    let mut r = rig("plat", &[Role::Platform], false);
    let (_, b, c) = r.client(&publish(
        2,
        "extbus/in/plat/tasks/submit",
        3,
        None,
        &[0; 2000],
    ));
    assert!(b.is_empty());
    assert_eq!(c, [0x50, 2, 0, 3]);
    let mut rel = Vec::new();
    encode_ack(PUBREL, 3, None, &mut rel);
    let (_, b, c) = r.client(&rel);
    assert!(b.is_empty());
    let mut comp = Vec::new();
    encode_ack(PUBCOMP, 3, None, &mut comp);
    assert_eq!(c, comp);
    assert!(matches!(
        r.notices.try_recv(),
        Ok(GateNotice::Oversized {
            size: 2000,
            limit: 1024,
            ..
        })
    ));
    // Another PUBREL for 3 is the broker's business again.
    assert_eq!(r.client(&rel).1, rel);
}

#[test]
fn aliases_are_resolved_before_the_check() {
    let mut r = rig("plat", &[Role::Platform], true);
    let set = publish(1, "extbus/in/plat/a", 1, Some(&[0x23, 0, 1]), b"x");
    assert_eq!(r.client(&set).2, puback(1));
    let use_it = publish(1, "", 2, Some(&[0x23, 0, 1]), b"x");
    assert_eq!(r.client(&use_it).2, puback(2));
    for _ in 0..2 {
        assert_eq!(r.commands.try_recv().unwrap().topic, "extbus/in/plat/a");
    }
    let repoint = publish(1, "extbus/in/other/a", 3, Some(&[0x23, 0, 1]), b"x");
    let (step, b, c) = r.client(&repoint);
    assert_eq!((step, b.len(), c[4]), (Step::Go, 0, 0x87));
    let (step, b, c) = r.client(&use_it);
    assert_eq!((step, b.len(), c), (Step::Close, 0, vec![0xe0, 2, 0x82, 0]));
    let (step, _, c) = r.client(&publish(0, "", 0, Some(&[0x23, 0x20, 0]), b"x"));
    assert_eq!((step, c), (Step::Close, vec![0xe0, 2, 0x94, 0]));
    assert!(
        r.commands.try_recv().is_err(),
        "refused publishes are not handed over"
    );
}

#[test]
fn broker_frames_are_translated_for_v4_clients() {
    let mut r = rig("op", &[Role::Operator], false);
    let props = [0x09, 0, 2, b'c', b'd'];
    let (step, c, b) = r.broker(&publish(1, "extbus/out/op/replies", 4, Some(&props), b"{}"));
    assert_eq!((step, b.len()), (Step::Go, 0));
    assert_eq!(c, publish(1, "extbus/out/op/replies", 4, None, b"{}"));
    let (step, c, _) = r.broker(&[0xe0, 2, 0x8b, 0]);
    assert_eq!((step, c.len()), (Step::Close, 0));
}

#[test]
fn extensions_get_only_their_operations() {
    let mut r = rig("ext", &[Role::Extension], true);
    let mine = publish(
        1,
        "extbus/tasks/blocked/vapp/instantiate",
        1,
        Some(&[]),
        b"t",
    );
    let other = publish(1, "extbus/tasks/blocked/vapp/delete", 2, Some(&[]), b"t");
    assert_eq!(r.broker(&mine).1, mine);
    let (_, c, b) = r.broker(&other);
    assert!(
        c.is_empty() && b.is_empty(),
        "the ack for 2 waits for the client's ack of 1"
    );
    let mut ack1 = Vec::new();
    encode_ack(PUBACK, 1, None, &mut ack1);
    let (_, b, _) = r.client(&ack1);
    let mut both = ack1.clone();
    encode_ack(PUBACK, 2, None, &mut both);
    assert_eq!(b, both);
    let mut op = rig("extop", &[Role::Extension, Role::Operator], true);
    assert_eq!(op.broker(&other).1, other);
}
