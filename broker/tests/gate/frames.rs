//! UNSUBACKs counted on the wire: rumqttc hides a second UNSUBACK for the same packet id, so
//! these tests speak MQTT by hand over a TCP socket and count every frame the gate sends.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SUBACK: u8 = 0x90;
const UNSUBACK: u8 = 0xb0;
const PINGRESP: u8 = 0xd0;

/// A raw MQTT connection: frames out as bytes, frames in as (first byte, body).
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
    v5: bool,
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    let mut n = body.len();
    loop {
        let b = (n % 128) as u8;
        n /= 128;
        f.push(if n > 0 { b | 0x80 } else { b });
        if n == 0 {
            break;
        }
    }
    f.extend_from_slice(body);
    f
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Wire {
    async fn connect(addr: SocketAddr, v5: bool, user: &str) -> Wire {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let level = if v5 { 5 } else { 4 };
        s.write_all(&connect_frame(level, b"MQTT", user, SECRET))
            .await
            .unwrap();
        let mut w = Wire {
            s,
            buf: Vec::new(),
            v5,
        };
        let (first, body) = w.read().await;
        assert_eq!((first, body[1]), (0x20, 0), "CONNACK accepted");
        w
    }

    /// The next whole frame, within `WAIT`.
    async fn read(&mut self) -> (u8, Vec<u8>) {
        timeout(WAIT, self.try_read())
            .await
            .expect("no frame from the gate in time")
            .expect("connection closed")
    }

    async fn try_read(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(f) = self.take_frame() {
                return Some(f);
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let (mut len, mut mul, mut i) = (0usize, 1usize, 1usize);
        loop {
            let b = *self.buf.get(i)?;
            len += (b & 0x7f) as usize * mul;
            mul *= 128;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if self.buf.len() < i + len {
            return None;
        }
        let first = self.buf[0];
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Some((first, body))
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    async fn subscribe(&mut self, pkid: u16, filters: &[&str]) -> Vec<u8> {
        let mut body = pkid.to_be_bytes().to_vec();
        if self.v5 {
            body.push(0);
        }
        for f in filters {
            string(&mut body, f);
            body.push(1);
        }
        self.send(&frame(0x82, &body)).await;
        loop {
            let (first, body) = self.read().await;
            if first == SUBACK && body[..2] == pkid.to_be_bytes() {
                let codes = if self.v5 { 3 + body[2] as usize } else { 2 };
                return body[codes..].to_vec();
            }
        }
    }

    async fn unsubscribe(&mut self, pkid: u16, filters: &[&str]) {
        let mut body = pkid.to_be_bytes().to_vec();
        if self.v5 {
            body.push(0);
        }
        for f in filters {
            string(&mut body, f);
        }
        self.send(&frame(0xa2, &body)).await;
    }

    /// Every UNSUBACK body that arrives before the answers to a later SUBSCRIBE and PINGREQ,
    /// and in a short quiet time after them (a late duplicate would show there).
    async fn unsubacks_until_quiet(&mut self, marker_pkid: u16) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut body = marker_pkid.to_be_bytes().to_vec();
        if self.v5 {
            body.push(0);
        }
        string(&mut body, "extbus/out/obs/marker");
        body.push(1);
        self.send(&frame(0x82, &body)).await;
        self.send(&[0xc0, 0]).await;
        let (mut suback, mut pong) = (false, false);
        while !(suback && pong) {
            let (first, body) = self.read().await;
            match first {
                UNSUBACK => out.push(body),
                SUBACK if body[..2] == marker_pkid.to_be_bytes() => suback = true,
                PINGRESP => pong = true,
                _ => {}
            }
        }
        while let Ok(Some((first, body))) =
            timeout(Duration::from_millis(300), self.try_read()).await
        {
            if first == UNSUBACK {
                out.push(body);
            }
        }
        out
    }
}

/// The packet id and reason codes of an UNSUBACK body.
fn unsuback(v5: bool, body: &[u8]) -> (u16, Vec<u8>) {
    let pkid = u16::from_be_bytes([body[0], body[1]]);
    if !v5 {
        assert_eq!(body.len(), 2, "a 3.1.1 UNSUBACK is just the packet id");
        return (pkid, vec![]);
    }
    let props = body[2] as usize;
    (pkid, body[3 + props..].to_vec())
}

#[tokio::test]
async fn one_unsuback_per_unsubscribe_on_the_wire() {
    let b = bus().await;
    for v5 in [false, true] {
        let mut w = Wire::connect(b.addr, v5, "obs").await;
        // The second filter is refused (obs is limited to acme): rumqttd never saw it.
        let codes = w
            .subscribe(1, &["extbus/events/acme/#", "extbus/events/#"])
            .await;
        assert_eq!(codes, [1, if v5 { 0x87 } else { 0x80 }], "v5={v5}");

        // One filter, the refused one.
        w.unsubscribe(2, &["extbus/events/#"]).await;
        let acks = w.unsubacks_until_quiet(3).await;
        assert_eq!(acks.len(), 1, "v5={v5}: {acks:?}");
        let (pkid, reasons) = unsuback(v5, &acks[0]);
        assert_eq!(pkid, 2);
        if v5 {
            assert_eq!(reasons.len(), 1, "{reasons:?}");
        }

        // Three filters in one UNSUBSCRIBE: still one UNSUBACK, one reason code per filter.
        w.unsubscribe(
            4,
            &[
                "extbus/events/acme/#",
                "extbus/events/#",
                "extbus/out/obs/marker",
            ],
        )
        .await;
        let acks = w.unsubacks_until_quiet(5).await;
        assert_eq!(acks.len(), 1, "v5={v5}: {acks:?}");
        let (pkid, reasons) = unsuback(v5, &acks[0]);
        assert_eq!(pkid, 4);
        if v5 {
            assert_eq!(reasons.len(), 3, "{reasons:?}");
        }
    }
}
