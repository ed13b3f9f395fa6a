//! The relay loop of one authenticated connection: a single task that reads from the client
//! and from its internal broker connection, cuts whole frames, lets the `Session` decide, and
//! writes the results back out in batches. Frames the gate makes itself are queued between
//! whole frames of the same output buffer, so nothing is ever interleaved mid-frame.
//! Backpressure: a side is not read while the buffer it feeds is full.

use super::codec::{self, FrameError, FrameStatus};
use super::quickack::quickack;
use super::session::{Session, Step, MALFORMED_PACKET, PACKET_TOO_LARGE, SERVER_SHUTTING_DOWN};
use bytes::{Buf, BytesMut};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A client stream the relay can read and write at the same time.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send;
    type Write: AsyncWrite + Unpin + Send;
    /// Written bytes may wait in a buffer until flushed (TLS records).
    const BUFFERED: bool;
    /// The TCP socket underneath, for socket options after the split.
    fn socket(&self) -> RawFd;
    fn halves(self) -> (Self::Read, Self::Write);
}

impl Duplex for TcpStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;
    const BUFFERED: bool = false;
    fn socket(&self) -> RawFd {
        self.as_raw_fd()
    }
    fn halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Duplex for tokio_rustls::server::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    const BUFFERED: bool = true;
    fn socket(&self) -> RawFd {
        self.get_ref().0.as_raw_fd()
    }
    fn halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// Read chunk size; a read buffer grows by this much when nearly full.
const READ_CHUNK: usize = 64 * 1024;
/// An output buffer above this stops the reads that feed it.
const HIGH_WATER: usize = 256 * 1024;
/// How long queued bytes may take to drain once a connection is closing.
const LINGER: Duration = Duration::from_secs(5);
/// How long the embedded broker may take to answer the CONNECT.
const CONNACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted from the embedded broker (it enforces its own limit).
const BROKER_CAP: usize = 268_435_455;

/// Bytes waiting to be written to one side.
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    pos: usize,
}

impl Out {
    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }
    fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.clear();
        }
    }
    fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > 4 * HIGH_WATER {
            self.buf.shrink_to(READ_CHUNK);
        }
    }
    /// The buffer to append whole frames to.
    fn tail(&mut self) -> &mut Vec<u8> {
        if self.pos > READ_CHUNK && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        &mut self.buf
    }
}

/// Which directions are still open, and whether the connection is winding down.
struct Flow {
    read_client: bool,
    read_broker: bool,
    write_client: bool,
    write_broker: bool,
    /// Half-close the broker side once its queue is written (the client left).
    fin_broker: bool,
    /// End as soon as every writable queue is empty.
    end_when_flushed: bool,
    client_dirty: bool,
    stopping: bool,
    deadline: Option<Instant>,
    /// Why the connection ended, when the socket said it first.
    why: Option<&'static str>,
}

impl Flow {
    fn linger(&mut self, d: Duration) {
        let at = Instant::now() + d;
        self.deadline = Some(self.deadline.map_or(at, |cur| cur.min(at)));
    }
    /// The client went away: deliver what it sent, then tell the broker.
    fn client_gone(&mut self, to_c: &mut Out) {
        self.why.get_or_insert("the client closed the connection");
        self.read_client = false;
        self.write_client = false;
        to_c.clear();
        self.fin_broker = true;
        self.linger(LINGER);
    }
    /// The broker closed this connection: give the client what is queued, then close.
    fn broker_gone(&mut self, to_b: &mut Out) {
        self.why.get_or_insert("the broker ended the session");
        self.read_broker = false;
        self.write_broker = false;
        to_b.clear();
        self.read_client = false;
        self.end_when_flushed = true;
        self.linger(LINGER);
    }
    /// The gate closes the connection: nothing more is read, queues drain, then close.
    fn close(&mut self, d: Duration) {
        self.read_client = false;
        self.read_broker = false;
        self.end_when_flushed = true;
        self.linger(d);
    }
}

/// What a writer does once its queue is empty.
enum End {
    Flush,
    Shutdown,
}

/// One cancel-safe step of a writer: write some of `pending`, or flush / half-close it when
/// nothing is pending (then `Ok(0)`).
async fn put<W: AsyncWrite + Unpin>(w: &mut W, pending: &[u8], end: End) -> std::io::Result<usize> {
    if !pending.is_empty() {
        return w.write(pending).await;
    }
    match end {
        End::Flush => w.flush().await.map(|()| 0),
        End::Shutdown => w.shutdown().await.map(|()| 0),
    }
}

fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(READ_CHUNK);
    }
}

/// Cuts whole frames off `buf` and hands them to `decide`; a partial frame stays buffered.
fn frames(
    buf: &mut BytesMut,
    cap: usize,
    mut decide: impl FnMut(&[u8], usize) -> Step,
) -> Result<Step, FrameError> {
    let mut pos = 0;
    let mut result = Ok(Step::Go);
    let mut want = 0;
    while pos < buf.len() {
        match codec::frame(&buf[pos..], cap) {
            Ok(FrameStatus::Ready { header, total }) => {
                let step = decide(&buf[pos..pos + total], header);
                pos += total;
                if step != Step::Go {
                    result = Ok(step);
                    break;
                }
            }
            Ok(FrameStatus::Partial(total)) => {
                want = total.unwrap_or(0);
                break;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    buf.advance(pos);
    if want > buf.len() {
        buf.reserve(want - buf.len());
    }
    result
}

/// Relays until either side ends, the gate closes the connection, or the gate stops.
/// `cbuf` holds client bytes already read after the CONNECT; `connect` is the CONNECT for
/// the broker.
pub(crate) async fn relay<C: Duplex>(
    client: C,
    broker: TcpStream,
    mut session: Session,
    mut cbuf: BytesMut,
    connect: Vec<u8>,
) -> &'static str {
    let gate = session.gate().clone();
    let cap = gate.hard_cap;
    let mut stop = gate.stopping();
    let fd = client.socket();
    let (mut cr, mut cw) = client.halves();
    let (mut br, mut bw) = broker.into_split();
    let mut bbuf = BytesMut::with_capacity(4096);
    let mut to_c = Out::default();
    let mut to_b = Out {
        buf: connect,
        pos: 0,
    };
    let mut flow = Flow {
        read_client: true,
        read_broker: true,
        write_client: true,
        write_broker: true,
        fin_broker: false,
        end_when_flushed: false,
        client_dirty: false,
        stopping: false,
        deadline: None,
        why: None,
    };
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    let mut armed = false;

    let on_client = |session: &mut Session,
                     cbuf: &mut BytesMut,
                     to_b: &mut Out,
                     to_c: &mut Out,
                     flow: &mut Flow| {
        let (b, c) = (to_b.tail(), to_c.tail());
        let r = frames(cbuf, cap, |f, h| session.on_client(f, h, b, c));
        let step = match r {
            Ok(step) => step,
            Err(FrameError::TooLarge(_)) => {
                session.disconnect(PACKET_TOO_LARGE, "frame above the size limit", c)
            }
            Err(FrameError::Malformed) => {
                session.disconnect(MALFORMED_PACKET, "bad remaining length", c)
            }
        };
        // `Hold` needs nothing here: the loop stops reading while the session holds.
        if step == Step::Close {
            flow.close(LINGER);
        }
    };
    // Client frames wait until the broker's CONNACK has gone out, so nothing the gate says
    // (or forwards) comes before it; the broker has a while to send it.
    let mut connected = false;
    flow.linger(CONNACK_TIMEOUT);

    loop {
        let client_done = !flow.write_client || to_c.is_empty();
        let broker_done = !flow.write_broker || to_b.is_empty();
        if flow.end_when_flushed && client_done && broker_done {
            break;
        }
        if let (Some(at), false) = (flow.deadline, armed) {
            sleep.as_mut().reset(at);
            armed = true;
        }
        let holding = session.holding();
        let read_client = connected
            && flow.read_client
            && !holding
            && to_b.len() < HIGH_WATER
            && to_c.len() < 4 * HIGH_WATER;
        let read_broker = flow.read_broker && to_c.len() < HIGH_WATER;
        make_room(&mut cbuf);
        make_room(&mut bbuf);
        tokio::select! {
            // Writes first: drain queued frames before taking in more.
            biased;
            r = put(&mut cw, to_c.pending(), End::Flush),
                if flow.write_client && (!to_c.is_empty() || flow.client_dirty) =>
            {
                match r {
                    Ok(0) if to_c.is_empty() => flow.client_dirty = false,
                    Ok(n) if n > 0 => {
                        to_c.advance(n);
                        flow.client_dirty = C::BUFFERED;
                    }
                    _ => flow.client_gone(&mut to_c),
                }
            }
            r = put(&mut bw, to_b.pending(), End::Shutdown),
                if flow.write_broker && (!to_b.is_empty() || flow.fin_broker) =>
            {
                match r {
                    Ok(0) if to_b.is_empty() => flow.write_broker = false,
                    Ok(n) if n > 0 => to_b.advance(n),
                    _ => flow.broker_gone(&mut to_b),
                }
            }
            r = br.read_buf(&mut bbuf), if read_broker => match r {
                Ok(n) if n > 0 && flow.write_client => {
                    let (c, b) = (to_c.tail(), to_b.tail());
                    let r = frames(&mut bbuf, BROKER_CAP, |f, h| session.on_broker(f, h, c, b));
                    if r != Ok(Step::Go) {
                        flow.close(LINGER);
                    } else if !connected && session.connack_seen() {
                        connected = true;
                        flow.deadline = None;
                        armed = false;
                        on_client(&mut session, &mut cbuf, &mut to_b, &mut to_c, &mut flow);
                    }
                }
                Ok(n) if n > 0 => bbuf.clear(),
                _ => {
                    if !session.connack_seen() {
                        session.unavailable(to_c.tail());
                    }
                    flow.broker_gone(&mut to_b);
                }
            },
            r = cr.read_buf(&mut cbuf), if read_client => match r {
                Ok(n) if n > 0 => {
                    // `cr` lives until the loop ends, so `fd` is still this client's socket.
                    quickack(fd);
                    on_client(&mut session, &mut cbuf, &mut to_b, &mut to_c, &mut flow)
                }
                _ => flow.client_gone(&mut to_c),
            },
            permit = gate.commands.clone().reserve_owned(), if holding && flow.read_client => {
                match permit {
                    Ok(permit) => {
                        session.release(permit, to_c.tail());
                        // Frames read behind the held command are taken in now.
                        on_client(&mut session, &mut cbuf, &mut to_b, &mut to_c, &mut flow);
                    }
                    Err(_) => flow.close(LINGER),
                }
            },
            () = &mut stopped, if !flow.stopping => {
                flow.stopping = true;
                session.disconnect(SERVER_SHUTTING_DOWN, "the gate is stopping", to_c.tail());
                flow.close(Duration::from_secs(1));
            },
            () = &mut sleep, if armed => break,
            else => break,
        }
    }
    session.closed_why().or(flow.why).unwrap_or("closed")
}
