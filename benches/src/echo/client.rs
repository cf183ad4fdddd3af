//! The load generator: every connection runs a closed loop — send one
//! message, read back the whole echo, compare it byte for byte with what
//! was sent, send the next.
//!
//! One thread drives every connection through mio (edge-triggered epoll)
//! on non-blocking sockets with `TCP_NODELAY`. Per message it makes one
//! `write` and (usually) one `read`, plus its share of an `epoll_wait`: it
//! never reads speculatively after a write, and stops reading as soon as a
//! read comes back short (edge-triggered epoll reports the next arrival).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

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
        }
    }

    /// Stamps the next sequence number into the first and last bytes of the
    /// message and starts sending it.
    fn send_next(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.seq += 1;
        let stamp = self.seq.to_le_bytes();
        let msg = self.tx.len();
        let k = msg.min(stamp.len());
        self.tx[..k].copy_from_slice(&stamp[..k]);
        self.tx[msg - k..].copy_from_slice(&stamp[..k]);
        self.written = 0;
        self.read = 0;
        self.busy = true;
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

/// A set of connections to one server, driven by the calling thread.
pub struct Client {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    completed: u64,
    in_flight: usize,
    sending: bool,
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

impl Client {
    /// Opens `conns` connections to `addr` (blocking connects, then switched
    /// to non-blocking), each exchanging messages of `msg` bytes. Nothing is
    /// sent until [`Client::start`].
    pub fn connect(addr: SocketAddr, conns: usize, msg: usize) -> io::Result<Client> {
        assert!(msg > 0, "messages must not be empty");
        let poll = Poll::new()?;
        let mut all = Vec::with_capacity(conns);
        for index in 0..conns {
            let stream = std::net::TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            let mut stream = TcpStream::from_std(stream);
            poll.registry()
                .register(&mut stream, Token(index), Interest::READABLE)?;
            all.push(Conn::new(stream, index, msg));
        }
        Ok(Client {
            poll,
            events: Events::with_capacity(conns.max(1)),
            conns: all,
            completed: 0,
            in_flight: 0,
            sending: false,
        })
    }

    /// Sends a message on every idle connection (all of them, at first or
    /// after [`Client::drain`]); from now on every completed echo is
    /// followed by the next message.
    pub fn start(&mut self) -> io::Result<()> {
        self.sending = true;
        let registry = self.poll.registry();
        for (index, conn) in self.conns.iter_mut().enumerate() {
            if !conn.busy {
                conn.send_next(registry, Token(index))?;
                self.in_flight += 1;
            }
        }
        Ok(())
    }

    /// Echoes completed (and checked) so far, on all connections.
    pub fn completed(&self) -> u64 {
        self.completed
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
                    self.completed += 1;
                    if self.sending {
                        conn.send_next(registry, token)?;
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
