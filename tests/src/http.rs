//! A small HTTP/1.1 client for tests: one keep-alive connection, requests written by hand,
//! responses read with `Content-Length` or chunked bodies. Enough for the broker's HTTP
//! listener; not a general client.

use base64::Engine as _;
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest wait for one response.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// `Authorization` value for Basic credentials.
pub fn basic(name: &str, secret: &str) -> String {
    let raw = format!("{name}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A keep-alive HTTP/1.1 connection.
pub struct Http {
    stream: BufReader<TcpStream>,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Http> {
        Self::from_stream(TcpStream::connect(addr).await?)
    }

    /// Connects from the local address `from` (any 127.x.y.z works on Linux loopback).
    pub async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> std::io::Result<Http> {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(from, 0))?;
        Self::from_stream(sock.connect(addr).await?)
    }

    fn from_stream(s: TcpStream) -> std::io::Result<Http> {
        s.set_nodelay(true)?;
        Ok(Http {
            stream: BufReader::new(s),
        })
    }

    /// Writes raw bytes (a partial request, say) without reading anything.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.get_mut().write_all(bytes).await
    }

    /// Waits up to `within` for the server to close the connection; true if it did.
    /// Anything it sends first is discarded.
    pub async fn closed_within(&mut self, within: std::time::Duration) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(within, async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    /// Sends one request and reads its response; `TimedOut` if no whole response comes within
    /// `WAIT` (a test never hangs on a broker or helper that stopped answering).
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        self.send_within(WAIT, method, target, headers, body).await
    }

    /// `send` with another bound (a browser driven on a busy machine can be slow).
    pub async fn send_within(
        &mut self,
        within: std::time::Duration,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        match tokio::time::timeout(within, self.send_unbounded(method, target, headers, body)).await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no response to {method} {target} within {within:?}"),
            )),
        }
    }

    async fn send_unbounded(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        // `host: extbus` unless the caller names one (some servers check it).
        let host = if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            ""
        } else {
            "host: extbus\r\n"
        };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\n{host}content-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        self.stream.get_mut().write_all(&msg).await?;
        self.read_response().await
    }

    async fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn read_response(&mut self) -> std::io::Result<HttpResponse> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut headers = Vec::new();
        loop {
            let l = self.line().await?;
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').ok_or_else(|| bad("bad header"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(len) = find("content-length") {
            let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
            body.resize(len, 0);
            self.stream.read_exact(&mut body).await?;
        } else if find("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let size = self.line().await?;
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    break;
                }
                let at = body.len();
                body.resize(at + size, 0);
                self.stream.read_exact(&mut body[at..]).await?;
                self.line().await?;
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut c = Http::connect(addr).await.expect("HTTP connect");
    c.send(method, target, headers, body)
        .await
        .expect("HTTP request")
}
