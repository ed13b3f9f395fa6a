//! Keeps acknowledgements toward the broker in the order the broker expects. rumqttd closes
//! a connection on an out-of-order PUBACK/PUBREC/PUBCOMP, so when the gate drops a publish
//! (and acks it itself) that ack waits for the acks of earlier publishes the client still
//! owes. Only used on connections whose deliveries the gate filters.

use super::codec::{encode_ack, PUBACK, PUBCOMP, PUBREC};
use std::collections::VecDeque;

struct Slot {
    pkid: u16,
    /// The ack frame once known; `None` while the client still has to send it.
    ack: Option<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct AckOrder {
    /// PUBACK/PUBREC owed for QoS 1/2 publishes, in delivery order.
    acks: VecDeque<Slot>,
    /// PUBCOMP owed for PUBRELs, in the order the broker sent them.
    rels: VecDeque<Slot>,
    /// QoS 2 publishes the gate dropped: their PUBREL is answered by the gate.
    dropped_qos2: Vec<u16>,
}

fn drain(q: &mut VecDeque<Slot>, to_broker: &mut Vec<u8>) {
    while q.front().is_some_and(|s| s.ack.is_some()) {
        if let Some(Slot { ack: Some(f), .. }) = q.pop_front() {
            to_broker.extend_from_slice(&f);
        }
    }
}

impl AckOrder {
    /// A QoS 1/2 publish was passed to the client, which will ack it.
    pub fn delivered(&mut self, pkid: u16) {
        self.acks.push_back(Slot { pkid, ack: None });
    }

    /// A QoS 1/2 publish was dropped: the gate acks it in the client's place.
    pub fn dropped(&mut self, pkid: u16, qos: u8, to_broker: &mut Vec<u8>) {
        let mut f = Vec::with_capacity(4);
        encode_ack(if qos == 1 { PUBACK } else { PUBREC }, pkid, None, &mut f);
        if qos == 2 {
            self.dropped_qos2.push(pkid);
        }
        self.acks.push_back(Slot { pkid, ack: Some(f) });
        drain(&mut self.acks, to_broker);
    }

    /// A PUBREL from the broker. Returns whether it goes on to the client (else the gate
    /// completes it, for a publish it dropped).
    pub fn broker_pubrel(&mut self, pkid: u16, to_broker: &mut Vec<u8>) -> bool {
        if let Some(i) = self.dropped_qos2.iter().position(|&p| p == pkid) {
            self.dropped_qos2.swap_remove(i);
            let mut f = Vec::with_capacity(4);
            encode_ack(PUBCOMP, pkid, None, &mut f);
            self.rels.push_back(Slot { pkid, ack: Some(f) });
            drain(&mut self.rels, to_broker);
            false
        } else {
            self.rels.push_back(Slot { pkid, ack: None });
            true
        }
    }

    /// A PUBACK, PUBREC or PUBCOMP from the client (`frame` is the whole packet).
    pub fn client_ack(&mut self, kind: u8, pkid: u16, frame: &[u8], to_broker: &mut Vec<u8>) {
        let q = if kind == PUBCOMP {
            &mut self.rels
        } else {
            &mut self.acks
        };
        if q.front().is_some_and(|s| s.pkid == pkid && s.ack.is_none()) {
            q.pop_front();
            to_broker.extend_from_slice(frame);
            drain(q, to_broker);
        } else if let Some(s) = q.iter_mut().find(|s| s.pkid == pkid && s.ack.is_none()) {
            s.ack = Some(frame.to_vec());
        } else {
            // Not one the broker is waiting for in order: let the broker judge it.
            to_broker.extend_from_slice(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(kind: u8, pkid: u16) -> Vec<u8> {
        let mut f = Vec::new();
        encode_ack(kind, pkid, None, &mut f);
        f
    }

    #[test]
    fn dropped_ack_waits_for_earlier_client_acks() {
        let mut o = AckOrder::default();
        let mut out = Vec::new();
        o.delivered(1);
        o.dropped(2, 1, &mut out);
        assert!(out.is_empty(), "must wait for the ack of 1");
        o.delivered(3);
        o.client_ack(PUBACK, 1, &ack(PUBACK, 1), &mut out);
        assert_eq!(out, [ack(PUBACK, 1), ack(PUBACK, 2)].concat());
        out.clear();
        o.client_ack(PUBACK, 3, &ack(PUBACK, 3), &mut out);
        assert_eq!(out, ack(PUBACK, 3));
    }

    #[test]
    fn out_of_order_client_acks_are_reordered() {
        let mut o = AckOrder::default();
        let mut out = Vec::new();
        o.delivered(1);
        o.delivered(2);
        o.client_ack(PUBACK, 2, &ack(PUBACK, 2), &mut out);
        assert!(out.is_empty());
        o.client_ack(PUBACK, 1, &ack(PUBACK, 1), &mut out);
        assert_eq!(out, [ack(PUBACK, 1), ack(PUBACK, 2)].concat());
        out.clear();
        o.client_ack(PUBACK, 9, &ack(PUBACK, 9), &mut out);
        assert_eq!(out, ack(PUBACK, 9), "unknown acks pass through");
    }

    #[test]
    fn qos2_dropped_publish_is_completed_by_the_gate() {
        let mut o = AckOrder::default();
        let mut out = Vec::new();
        o.delivered(1);
        o.dropped(2, 2, &mut out);
        o.client_ack(PUBREC, 1, &ack(PUBREC, 1), &mut out);
        assert_eq!(out, [ack(PUBREC, 1), ack(PUBREC, 2)].concat());
        out.clear();
        assert!(o.broker_pubrel(1, &mut out));
        assert!(!o.broker_pubrel(2, &mut out));
        assert!(out.is_empty(), "PUBCOMP 2 waits for PUBCOMP 1");
        o.client_ack(PUBCOMP, 1, &ack(PUBCOMP, 1), &mut out);
        assert_eq!(out, [ack(PUBCOMP, 1), ack(PUBCOMP, 2)].concat());
    }
}
