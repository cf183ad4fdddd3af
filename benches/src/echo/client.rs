//! The load generator: every connection runs a closed loop — send one
//! message, read back the whole echo, compare it byte for byte with what
//! was sent, send the next.
//!
//! One thread drives every connection through mio (edge-triggered epoll)
//! on non-blocking sockets with `TCP_NODELAY`. Per message it makes one
//! `write` and (usually) one `read`, plus its share of an `epoll_wait`: it
//! never reads speculatively after a write, and stops reading as soon as a
//! read comes back short (edge-triggered epoll reports the next arrival).
//!
//! Connections are opened in batches of [`CONNECT_BATCH`] non-blocking
//! connects; once a batch is established every connection in it echoes
//! one message (so the server has accepted it and its task / fiber runs)
//! before the next batch starts. So 10 000 connections never overflow the
//! server's accept queue: on overflow the kernel drops SYNs and handshake
//! ACKs, and such connections stall for a second or more until a
//! retransmission gets through.
//!
//! For the measured window ([`Client::reset_window`] starts it,
//! [`Client::window_stats`] reads it) the client keeps, without allocating
//! per message, every connection's count of completed echoes and every
//! echo's round-trip time — from just before the first byte of the message
//! is written to the read that completes the echo — in a
//! [`Histogram`]. One clock read per echo: the instant an echo completes
//! is also the send time of the next message on that connection.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::histogram::Histogram;

/// Connections connected at once (see the module docs); a quarter of the
/// smallest listen backlog of the servers (1024: loom, tokio, monoio, may;
/// the floors use 4096).
pub const CONNECT_BATCH: usize = 256;

/// How long one batch of connects may take (a dropped SYN is retried
/// after 1 s, 3 s, 7 s, ...).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the client waits without a single completed echo, while
/// messages are outstanding, before declaring the server stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound on one `epoll_wait`, so deadlines are checked even when the
/// server is silent.
const POLL_TIMEOUT: Duration = Duration::from_millis(10);

/// One connection's closed loop.
struct Conn {
    stream: TcpStream,
    /// The message in flight (or last sent).
    tx: Box<[u8]>,
    /// The echo received so far.
    rx: Box<[u8]>,
    /// Sequence number of the message in `tx`.
    seq: u64,
    /// Bytes of `tx` written so far.
    written: usize,
    /// Bytes of `rx` received so far.
    read: usize,
    /// Whether a message is outstanding (sent, echo not complete).
    busy: bool,
    /// Whether the socket is registered for writability (only after a
    /// short write).
    want_writable: bool,
    /// When the message in flight was sent.
    sent_at: Instant,
    /// Echoes completed since the window started.
    window_msgs: u64,
}

impl Conn {
    fn new(stream: TcpStream, index: usize, msg: usize) -> Conn {
        // A pattern that differs between connections and along the message.
        let tx: Box<[u8]> = (0..msg)
            .map(|j| (index.wrapping_mul(131).wrapping_add(j.wrapping_mul(7))) as u8)
            .collect();
        Conn {
            stream,
            rx: vec![0; msg].into_boxed_slice(),
            tx,
            seq: 0,
            written: 0,
            read: 0,
            busy: false,
            want_writable: false,
            sent_at: Instant::now(),
            window_msgs: 0,
        }
    }

    /// Stamps the next sequence number into the first and last bytes of the
    /// message and starts sending it; `now` is the send time.
    fn send_next(&mut self, registry: &Registry, token: Token, now: Instant) -> io::Result<()> {
        self.seq += 1;
        let stamp = self.seq.to_le_bytes();
        let msg = self.tx.len();
        let k = msg.min(stamp.len());
        self.tx[..k].copy_from_slice(&stamp[..k]);
        self.tx[msg - k..].copy_from_slice(&stamp[..k]);
        self.written = 0;
        self.read = 0;
        self.busy = true;
        self.sent_at = now;
        self.flush(registry, token)?;
        Ok(())
    }

    /// Writes what is left of the message; `Ok(false)` if the socket buffer
    /// filled up (writability is then watched until it drains).
    fn flush(&mut self, registry: &Registry, token: Token) -> io::Result<bool> {
        while self.written < self.tx.len() {
            match self.stream.write(&self.tx[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.want_writable {
                        registry.reregister(
                            &mut self.stream,
                            token,
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
                        self.want_writable = true;
                    }
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.want_writable {
            registry.reregister(&mut self.stream, token, Interest::READABLE)?;
            self.want_writable = false;
        }
        Ok(true)
    }

    /// Advances the connection after a readiness event. Returns whether the
    /// echo of the outstanding message is now complete (and checked); the
    /// caller decides whether to send the next one.
    fn progress(&mut self, registry: &Registry, token: Token) -> io::Result<bool> {
        if !self.busy || !self.flush(registry, token)? {
            return Ok(false);
        }
        let msg = self.rx.len();
        while self.read < msg {
            let want = msg - self.read;
            match self.stream.read(&mut self.rx[self.read..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                Ok(n) => {
                    self.read += n;
                    if n < want && self.read < msg {
                        // Drained; the rest raises a new edge when it lands.
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.rx != self.tx {
            let at = self.rx.iter().zip(&self.tx).position(|(a, b)| a != b);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "echo of message #{} differs from what was sent (first difference at byte {at:?})",
                    self.seq
                ),
            ));
        }
        self.busy = false;
        Ok(true)
    }
}

/// What the client saw in the measured window (see [`Client::window_stats`]).
#[derive(Debug, Clone, Copy)]
pub struct WindowStats {
    /// Median round-trip time, µs.
    pub p50_us: f64,
    /// 99th-percentile round-trip time, µs.
    pub p99_us: f64,
    /// Longest round trip, µs.
    pub max_us: f64,
    /// Fewest echoes any one connection completed.
    pub conn_min_msgs: f64,
    /// Median over the connections of the echoes each completed.
    pub conn_median_msgs: f64,
}

/// A set of connections to one server, driven by the calling thread.
pub struct Client {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    completed: u64,
    in_flight: usize,
    sending: bool,
    /// Round-trip times of the echoes completed since the window started.
    latency: Histogram,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("conns", &self.conns.len())
            .field("completed", &self.completed)
            .field("in_flight", &self.in_flight)
            .field("sending", &self.sending)
            .finish()
    }
}

/// Opens connections `first..first + n` to `addr` with non-blocking
/// connects and waits until every one is established (or failed), then
/// registers each for readability under its index.
fn connect_batch(
    poll: &mut Poll,
    events: &mut Events,
    addr: SocketAddr,
    first: usize,
    n: usize,
) -> io::Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(n);
    for index in first..first + n {
        let mut stream = TcpStream::connect(addr)?;
        poll.registry()
            .register(&mut stream, Token(index), Interest::WRITABLE)?;
        streams.push(stream);
    }
    let mut pending = n;
    let mut done = vec![false; n];
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while pending > 0 {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{pending} of {n} connects pending after {CONNECT_TIMEOUT:?}"),
            ));
        }
        match poll.poll(events, Some(POLL_TIMEOUT)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            // Earlier batches' sockets are quiet (nothing was sent yet).
            let Some(k) = event.token().0.checked_sub(first).filter(|&k| k < n) else {
                continue;
            };
            let stream = &streams[k];
            if done[k] {
                continue;
            }
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
            match stream.peer_addr() {
                Ok(_) => {
                    done[k] = true;
                    pending -= 1;
                }
                // Not yet: a spurious wake-up.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(e),
            }
        }
    }
    for (k, stream) in streams.iter_mut().enumerate() {
        stream.set_nodelay(true)?;
        poll.registry()
            .reregister(stream, Token(first + k), Interest::READABLE)?;
    }
    Ok(streams)
}

impl Client {
    /// Opens `conns` connections to `addr` (in batches of
    /// [`CONNECT_BATCH`], see the module docs), each exchanging messages of
    /// `msg` bytes. Every connection echoes one message before the next
    /// batch connects; after that nothing is sent until [`Client::start`],
    /// and [`Client::completed`] starts from 0.
    pub fn connect(addr: SocketAddr, conns: usize, msg: usize) -> io::Result<Client> {
        assert!(msg > 0, "messages must not be empty");
        let mut client = Client {
            poll: Poll::new()?,
            events: Events::with_capacity(conns.max(1)),
            conns: Vec::with_capacity(conns),
            completed: 0,
            in_flight: 0,
            sending: false,
            latency: Histogram::new(),
        };
        while client.conns.len() < conns {
            let first = client.conns.len();
            let n = CONNECT_BATCH.min(conns - first);
            let streams = connect_batch(&mut client.poll, &mut client.events, addr, first, n)?;
            for (k, stream) in streams.into_iter().enumerate() {
                client.conns.push(Conn::new(stream, first + k, msg));
            }
            // The echo proves the server accepted the connection (a
            // client-side "established" does not: when the accept queue is
            // full the kernel drops the handshake's last ACK, and the
            // connection stalls for seconds until the server retries).
            client.ping(first..first + n)?;
        }
        client.completed = 0;
        client.reset_window();
        Ok(client)
    }

    /// Sends one message on each of connections `range` and waits for the
    /// echoes.
    fn ping(&mut self, range: std::ops::Range<usize>) -> io::Result<()> {
        self.sending = false;
        let registry = self.poll.registry();
        let now = Instant::now();
        for index in range {
            self.conns[index].send_next(registry, Token(index), now)?;
            self.in_flight += 1;
        }
        self.run_until(|c| c.in_flight == 0)
    }

    /// Sends a message on every idle connection (all of them, at first or
    /// after [`Client::drain`]); from now on every completed echo is
    /// followed by the next message.
    pub fn start(&mut self) -> io::Result<()> {
        self.sending = true;
        let registry = self.poll.registry();
        for (index, conn) in self.conns.iter_mut().enumerate() {
            if !conn.busy {
                conn.send_next(registry, Token(index), Instant::now())?;
                self.in_flight += 1;
            }
        }
        Ok(())
    }

    /// Echoes completed (and checked) so far, on all connections.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Starts the measured window: forgets the round-trip times and the
    /// per-connection counts recorded so far.
    pub fn reset_window(&mut self) {
        self.latency.clear();
        for conn in &mut self.conns {
            conn.window_msgs = 0;
        }
    }

    /// Round-trip percentiles and per-connection echo counts since
    /// [`Client::reset_window`].
    pub fn window_stats(&self) -> WindowStats {
        let mut counts: Vec<u64> = self.conns.iter().map(|c| c.window_msgs).collect();
        counts.sort_unstable();
        let mid = counts.len() / 2;
        let conn_median_msgs = match counts.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => counts[mid] as f64,
            _ => (counts[mid - 1] + counts[mid]) as f64 / 2.0,
        };
        WindowStats {
            p50_us: self.latency.quantile(0.5),
            p99_us: self.latency.quantile(0.99),
            max_us: if self.latency.is_empty() {
                f64::NAN
            } else {
                self.latency.max() as f64
            },
            conn_min_msgs: counts.first().map_or(f64::NAN, |&n| n as f64),
            conn_median_msgs,
        }
    }

    /// Runs the closed loops until `stop(self)` returns true; `stop` is
    /// checked after every `epoll_wait` (at least every 10 ms).
    ///
    /// # Errors
    ///
    /// Any socket error, an echo that differs from the message sent, or no
    /// echo completing for 5 s while messages are outstanding.
    pub fn run_until(&mut self, mut stop: impl FnMut(&Client) -> bool) -> io::Result<()> {
        let mut last_progress = Instant::now();
        while !stop(self) {
            match self.poll.poll(&mut self.events, Some(POLL_TIMEOUT)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let before = self.completed;
            let registry = self.poll.registry();
            for event in self.events.iter() {
                let token = event.token();
                let conn = &mut self.conns[token.0];
                if conn.progress(registry, token)? {
                    let now = Instant::now();
                    let rtt = now.saturating_duration_since(conn.sent_at);
                    self.latency
                        .record(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX));
                    conn.window_msgs += 1;
                    self.completed += 1;
                    if self.sending {
                        conn.send_next(registry, token, now)?;
                    } else {
                        self.in_flight -= 1;
                    }
                }
            }
            if self.completed != before || self.in_flight == 0 {
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no echo for {STALL_TIMEOUT:?} with {} messages outstanding",
                        self.in_flight
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs the closed loops until `deadline`.
    pub fn run_until_instant(&mut self, deadline: Instant) -> io::Result<()> {
        self.run_until(|_| Instant::now() >= deadline)
    }

    /// Stops sending new messages and waits for every outstanding echo.
    pub fn drain(&mut self) -> io::Result<()> {
        self.sending = false;
        self.run_until(|c| c.in_flight == 0)
    }
}
