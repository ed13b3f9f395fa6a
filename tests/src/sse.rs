//! A Server-Sent Events reader for tests: one `GET` on its own connection, the chunked body
//! parsed into events (`id`, `event`, `data`) and keep-alive comments. It reads only when
//! asked, so a test can play a slow reader; its socket's receive buffer can be made small.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One thing the stream sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    Event {
        id: Option<String>,
        event: Option<String>,
        data: String,
    },
    /// A `:` comment line (keep-alive).
    Comment,
}

impl Sse {
    /// The event's seq (`id:`), if it is an event with one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Sse::Event { id, .. } => id.as_ref()?.parse().ok(),
            Sse::Comment => None,
        }
    }

    pub fn kind(&self) -> Option<&str> {
        match self {
            Sse::Event { event, .. } => event.as_deref(),
            Sse::Comment => None,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        match self {
            Sse::Event { data, .. } => serde_json::from_str(data).unwrap_or_default(),
            Sse::Comment => serde_json::Value::Null,
        }
    }
}

/// An open stream (or the answer that refused it).
pub struct SseStream {
    sock: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Bytes read and not yet parsed (chunk framing included).
    raw: Vec<u8>,
    /// Body text not yet parsed into events.
    text: String,
    ended: bool,
}

impl SseStream {
    /// Opens `target` with `headers`; `recv_buffer` sets the socket's receive buffer first.
    pub async fn open(
        addr: SocketAddr,
        target: &str,
        headers: &[(&str, &str)],
        recv_buffer: Option<u32>,
    ) -> std::io::Result<SseStream> {
        let s = TcpSocket::new_v4()?;
        if let Some(n) = recv_buffer {
            s.set_recv_buffer_size(n)?;
        }
        let mut sock = s.connect(addr).await?;
        let mut head =
            format!("GET {target} HTTP/1.1\r\nhost: extbus\r\naccept: text/event-stream\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        sock.write_all(head.as_bytes()).await?;
        let mut s = SseStream {
            sock,
            status: 0,
            headers: Vec::new(),
            raw: Vec::new(),
            text: String::new(),
            ended: false,
        };
        s.read_head().await?;
        Ok(s)
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut buf = [0u8; 8192];
        let n = self.sock.read(&mut buf).await?;
        self.raw.extend_from_slice(&buf[..n]);
        Ok(n > 0)
    }

    async fn read_head(&mut self) -> std::io::Result<()> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let end = loop {
            if let Some(at) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            if !self.fill().await? {
                return Err(bad("closed before the response head"));
            }
        };
        let head = String::from_utf8_lossy(&self.raw[..end]).to_string();
        self.raw.drain(..end + 4);
        let mut lines = head.split("\r\n");
        self.status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                self.headers
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Ok(())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Moves whole chunks from `raw` to `text`; notes the last chunk.
    fn unchunk(&mut self) {
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = std::str::from_utf8(&self.raw[..eol])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
            let Some(size) = size else {
                self.ended = true;
                return;
            };
            if size == 0 {
                self.ended = true;
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            let data = self.raw[eol + 2..eol + 2 + size].to_vec();
            self.text.push_str(&String::from_utf8_lossy(&data));
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// The next complete event or comment already received, if any.
    fn parse_one(&mut self) -> Option<Sse> {
        let end = self.text.find("\n\n")?;
        let block: String = self.text[..end].to_string();
        self.text.drain(..end + 2);
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        let mut comment = true;
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            comment = false;
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            let v = v.strip_prefix(' ').unwrap_or(v).to_string();
            match k {
                "id" => id = Some(v),
                "event" => event = Some(v),
                "data" => data.push(v),
                _ => {}
            }
        }
        Some(if comment {
            Sse::Comment
        } else {
            Sse::Event {
                id,
                event,
                data: data.join("\n"),
            }
        })
    }

    /// The next event or comment within `within`; `None` on timeout or when the stream ended.
    pub async fn next_within(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.unchunk();
            if let Some(e) = self.parse_one() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(Ok(true)) => {}
                Ok(_) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// The next event, skipping comments (20 s at most).
    pub async fn next_event(&mut self) -> Option<Sse> {
        let until = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await? {
                Sse::Comment => continue,
                e => return Some(e),
            }
        }
    }

    /// Whether the server ended the stream (terminating chunk or closed socket).
    pub fn ended(&self) -> bool {
        self.ended
    }
}
