//! CONNECT and CONNACK: parsing a client's CONNECT (3.1.1 or 5), re-encoding it for the
//! embedded broker as MQTT 5 with the internal token as password, and CONNACK refusals.

use super::codec::{
    props, put_bin, put_varint, Malformed, Reader, CONNACK, CONNECT, PROP_TOPIC_ALIAS_MAX,
};

/// Why a CONNECT cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// Protocol level other than 4 (3.1.1) or 5.
    Unsupported(u8),
    Malformed(Malformed),
}

impl From<Malformed> for ConnectError {
    fn from(m: Malformed) -> Self {
        ConnectError::Malformed(m)
    }
}

/// The last will carried by a CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    /// Will properties (v5), topic and payload exactly as encoded, for re-encoding.
    pub raw: &'a [u8],
    pub topic: &'a str,
    pub payload: &'a [u8],
}

/// A parsed CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    pub level: u8,
    pub flags: u8,
    pub keep_alive: u16,
    /// v5 CONNECT properties (without the length prefix); empty for 3.1.1.
    pub props: &'a [u8],
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

impl Connect<'_> {
    pub fn v5(&self) -> bool {
        self.level == 5
    }

    /// MQTT 5 Request Problem Information: may acks carry a reason string? (default yes)
    pub fn wants_reasons(&self) -> bool {
        props(self.props)
            .filter_map(Result::ok)
            .find(|p| p.id == 0x17)
            .is_none_or(|p| p.value != [0])
    }
}

pub fn parse_connect(frame: &[u8], header: usize) -> Result<Connect<'_>, ConnectError> {
    let mut r = Reader::new(frame, header);
    let name = r.bin()?;
    let level = r.u8()?;
    if level != 4 && level != 5 {
        return Err(ConnectError::Unsupported(level));
    }
    if name != b"MQTT" {
        return Err(Malformed("protocol name").into());
    }
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(Malformed("reserved connect flag").into());
    }
    let keep_alive = r.u16()?;
    let props = if level == 5 { r.props()? } else { &[] };
    let client_id = r.str()?;
    let will = if flags & 0x04 != 0 {
        if (flags >> 3) & 0x03 == 3 {
            return Err(Malformed("will QoS").into());
        }
        let start = r.pos;
        if level == 5 {
            r.props()?;
        }
        let topic = r.str()?;
        let payload = r.bin()?;
        Some(Will {
            raw: &frame[start..r.pos],
            topic,
            payload,
        })
    } else {
        if flags & 0x38 != 0 {
            return Err(Malformed("will flags without a will").into());
        }
        None
    };
    let username = if flags & 0x80 != 0 {
        Some(r.str()?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(r.bin()?)
    } else {
        None
    };
    if !r.rest().is_empty() {
        return Err(Malformed("bytes after the CONNECT payload").into());
    }
    Ok(Connect {
        level,
        flags,
        keep_alive,
        props,
        client_id,
        will,
        username,
        password,
    })
}

/// Re-encodes a CONNECT with new credentials (the last fields of the payload), as MQTT 5
/// when `as_v5` (a 3.1.1 CONNECT gains empty property blocks), else at its own level. The
/// Topic Alias Maximum property is dropped so the broker never sends topic aliases.
pub fn encode_connect(
    c: &Connect<'_>,
    username: &str,
    password: &[u8],
    as_v5: bool,
    out: &mut Vec<u8>,
) {
    let mut body = Vec::with_capacity(64 + c.client_id.len() + c.props.len());
    put_bin(&mut body, b"MQTT");
    body.push(if as_v5 { 5 } else { c.level });
    body.push((c.flags & 0x3e) | 0xc0);
    // rumqttd refuses keep alive 0 ("never"); the longest interval comes closest.
    let keep_alive = if c.keep_alive == 0 {
        u16::MAX
    } else {
        c.keep_alive
    };
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if as_v5 || c.v5() {
        let kept: Vec<&[u8]> = props(c.props)
            .filter_map(Result::ok)
            .filter(|p| p.id != PROP_TOPIC_ALIAS_MAX)
            .map(|p| p.raw)
            .collect();
        put_varint(&mut body, kept.iter().map(|p| p.len()).sum());
        for p in kept {
            body.extend_from_slice(p);
        }
    }
    put_bin(&mut body, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if as_v5 && !c.v5() {
            body.push(0);
        }
        body.extend_from_slice(w.raw);
    }
    put_bin(&mut body, username.as_bytes());
    put_bin(&mut body, password);
    out.push(CONNECT << 4);
    put_varint(out, body.len());
    out.extend_from_slice(&body);
}

/// A CONNACK refusing the connection (3.1.1 return code or MQTT 5 reason code).
pub fn connack_refusal(v5: bool, code: u8) -> Vec<u8> {
    if v5 {
        vec![CONNACK << 4, 3, 0, code, 0]
    } else {
        vec![CONNACK << 4, 2, 0, code]
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{frame, FrameStatus};
    use super::*;

    fn connect_v4(flags: u8, tail: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60];
        body.extend_from_slice(&[0, 2, b'c', b'1']);
        body.extend_from_slice(tail);
        let mut f = vec![0x10];
        put_varint(&mut f, body.len());
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn connect_parse_and_reencode_v4() {
        let mut tail = Vec::new();
        put_bin(&mut tail, b"will/t");
        put_bin(&mut tail, b"bye");
        put_bin(&mut tail, b"alice");
        put_bin(&mut tail, b"secret");
        let f = connect_v4(0xc0 | 0x04 | 0x08 | 0x02, &tail);
        let c = parse_connect(&f, 2).unwrap();
        assert_eq!(c.level, 4);
        assert_eq!(c.client_id, "c1");
        assert_eq!(c.username, Some("alice"));
        assert_eq!(c.password, Some(&b"secret"[..]));
        let w = c.will.unwrap();
        assert_eq!((w.topic, w.payload), ("will/t", &b"bye"[..]));
        for as_v5 in [false, true] {
            let mut out = Vec::new();
            encode_connect(&c, "alice", b"token-token", as_v5, &mut out);
            let FrameStatus::Ready { header, total } = frame(&out, 1 << 20).unwrap() else {
                panic!("incomplete")
            };
            assert_eq!(total, out.len());
            let d = parse_connect(&out, header).unwrap();
            assert_eq!(d.level, if as_v5 { 5 } else { 4 });
            assert_eq!(d.password, Some(&b"token-token"[..]));
            assert_eq!(d.flags, c.flags);
            let w = d.will.unwrap();
            assert_eq!((w.topic, w.payload), ("will/t", &b"bye"[..]));
            assert_eq!(d.client_id, "c1");
        }
    }

    #[test]
    fn connect_without_credentials_and_bad_levels() {
        let f = connect_v4(0x02, &[]);
        let c = parse_connect(&f, 2).unwrap();
        assert_eq!((c.username, c.password), (None, None));
        let mut out = Vec::new();
        encode_connect(&c, "u", b"p", true, &mut out);
        let d = parse_connect(&out, 2).unwrap();
        assert_eq!(d.username, Some("u"));
        let mut bad = f.clone();
        bad[8] = 3;
        assert_eq!(
            parse_connect(&bad, 2).unwrap_err(),
            ConnectError::Unsupported(3)
        );
        let mut reserved = f.clone();
        reserved[9] |= 1;
        assert!(matches!(
            parse_connect(&reserved, 2),
            Err(ConnectError::Malformed(_))
        ));
        // Truncated at every length: never a panic.
        for n in 0..f.len() {
            let _ = parse_connect(&f[..n], 2.min(n));
        }
    }

    #[test]
    fn connect_v5_drops_topic_alias_maximum() {
        let props = [0x11, 0, 0, 0, 10, 0x22, 0, 16, 0x21, 0, 5];
        let mut body = vec![
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            0xc2,
            0,
            30,
            props.len() as u8,
        ];
        body.extend_from_slice(&props);
        put_bin(&mut body, b"cid");
        put_bin(&mut body, b"bob");
        put_bin(&mut body, b"pw");
        let mut f = vec![0x10];
        put_varint(&mut f, body.len());
        f.extend_from_slice(&body);
        let c = parse_connect(&f, 2).unwrap();
        assert!(c.v5());
        let mut out = Vec::new();
        encode_connect(&c, "bob", b"tok", true, &mut out);
        let d = parse_connect(&out, 2).unwrap();
        let ids: Vec<u8> = props_ids(d.props);
        assert_eq!(ids, vec![0x11, 0x21]);
        assert_eq!(d.password, Some(&b"tok"[..]));
    }

    #[test]
    fn refusals() {
        assert_eq!(connack_refusal(false, 4), vec![0x20, 2, 0, 4]);
        assert_eq!(connack_refusal(true, 0x86), vec![0x20, 3, 0, 0x86, 0]);
    }

    fn props_ids(block: &[u8]) -> Vec<u8> {
        props(block).map(|p| p.unwrap().id).collect()
    }
}
