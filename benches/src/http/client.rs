//! The load generator: every connection runs a closed loop — write a batch
//! of `depth` requests in one write, read until `depth` responses are
//! parsed and checked, write the next batch. `depth` 1 is plain
//! keep-alive; 16 is HTTP/1.1 pipelining.
//!
//! Like the echo bench's client, one thread drives every connection
//! through mio (edge-triggered epoll) on non-blocking sockets with
//! `TCP_NODELAY`, and stops reading as soon as a read comes back short.
//!
//! Responses are parsed generically (`httparse`: status line, headers in
//! any case and order, `Content-Length`), since the servers differ in
//! their headers; each must be `200` with exactly the cell's body.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::Cell;

/// How long the client waits without a single completed request, while
/// requests are outstanding, before declaring the server stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound on one `epoll_wait`, so deadlines are checked even when the
/// server is silent.
const POLL_TIMEOUT: Duration = Duration::from_millis(10);

/// Room for a batch of responses (16 of about 150 bytes fit many times).
const RX_BUF: usize = 16 * 1024;

/// Headers a response may have for the client to parse it.
const MAX_HEADERS: usize = 16;

/// One connection's closed loop.
struct Conn {
    stream: TcpStream,
    /// Bytes of the batch written so far.
    written: usize,
    /// Received bytes, `rx[..filled]`, from the start of an unparsed
    /// response.
    rx: Box<[u8]>,
    filled: usize,
    /// Responses of the current batch still to come.
    pending: usize,
    /// Whether the socket is registered for writability (only after a
    /// short write).
    want_writable: bool,
}

/// What every connection shares: the batch it sends and the body it
/// expects.
struct Shape {
    batch: Box<[u8]>,
    depth: usize,
    body: &'static [u8],
}

impl Conn {
    /// Starts sending the next batch.
    fn send_batch(&mut self, shape: &Shape, registry: &Registry, token: Token) -> io::Result<()> {
        self.written = 0;
        self.pending = shape.depth;
        self.flush(shape, registry, token)?;
        Ok(())
    }

    /// Writes what is left of the batch; `Ok(false)` if the socket buffer
    /// filled up (writability is then watched until it drains).
    fn flush(&mut self, shape: &Shape, registry: &Registry, token: Token) -> io::Result<bool> {
        while self.written < shape.batch.len() {
            match self.stream.write(&shape.batch[self.written..]) {
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

    /// Advances the connection after a readiness event. Returns how many
    /// responses completed (each parsed and checked); the batch is done
    /// when `pending` is 0.
    fn progress(&mut self, shape: &Shape, registry: &Registry, token: Token) -> io::Result<usize> {
        if self.pending == 0 || !self.flush(shape, registry, token)? {
            return Ok(0);
        }
        let mut done = 0;
        loop {
            if self.filled == self.rx.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a response does not fit the client's buffer",
                ));
            }
            let want = self.rx.len() - self.filled;
            let n = match self.stream.read(&mut self.rx[self.filled..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.filled += n;
            done += self.parse(shape)?;
            if self.pending == 0 {
                if self.filled != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} bytes arrived after the last response of a batch",
                            self.filled
                        ),
                    ));
                }
                return Ok(done);
            }
            if n < want {
                // Drained; the rest raises a new edge when it lands.
                return Ok(done);
            }
        }
    }

    /// Parses and checks every whole response in `rx`, moves a partial
    /// rest to the front; returns how many there were.
    fn parse(&mut self, shape: &Shape) -> io::Result<usize> {
        let mut at = 0;
        let mut done = 0;
        while self.pending > 0 {
            match parse_response(&self.rx[at..self.filled], shape.body)? {
                Some(len) => {
                    at += len;
                    done += 1;
                    self.pending -= 1;
                }
                None => break,
            }
        }
        self.rx.copy_within(at..self.filled, 0);
        self.filled -= at;
        Ok(done)
    }
}

/// Parses one response at the start of `input`: `Some(its length)` if it
/// is whole, `None` if more is needed. It must be `200` with `body`.
fn parse_response(input: &[u8], body: &[u8]) -> io::Result<Option<usize>> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(format!("malformed response: {e}"))),
    };
    if response.code != Some(200) {
        return Err(invalid(format!(
            "status {:?} {:?}, expected 200",
            response.code, response.reason
        )));
    }
    let mut length = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(
                "a chunked response (expected Content-Length)".into(),
            ));
        }
    }
    let length = length.ok_or_else(|| invalid("a response without Content-Length".into()))?;
    let Some(got) = input.get(head..head + length) else {
        return Ok(None);
    };
    if got != body {
        return Err(invalid(format!(
            "body {:?}, expected {:?}",
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(body)
        )));
    }
    Ok(Some(head + length))
}

/// A set of connections to one server, driven by the calling thread.
pub struct Client {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    shape: Shape,
    completed: u64,
    /// Connections with a batch outstanding.
    in_flight: usize,
    sending: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("conns", &self.conns.len())
            .field("depth", &self.shape.depth)
            .field("completed", &self.completed)
            .field("in_flight", &self.in_flight)
            .field("sending", &self.sending)
            .finish()
    }
}

impl Client {
    /// Opens `conns` connections to `addr` (blocking connects, then switched
    /// to non-blocking) for `cell`'s requests. Nothing is sent until
    /// [`Client::start`].
    pub fn connect(addr: SocketAddr, conns: usize, cell: Cell) -> io::Result<Client> {
        let poll = Poll::new()?;
        let mut all = Vec::with_capacity(conns);
        for index in 0..conns {
            let stream = std::net::TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            let mut stream = TcpStream::from_std(stream);
            poll.registry()
                .register(&mut stream, Token(index), Interest::READABLE)?;
            all.push(Conn {
                stream,
                written: 0,
                rx: vec![0; RX_BUF].into_boxed_slice(),
                filled: 0,
                pending: 0,
                want_writable: false,
            });
        }
        let depth = cell.depth();
        Ok(Client {
            poll,
            events: Events::with_capacity(conns.max(1)),
            conns: all,
            shape: Shape {
                batch: cell.request().repeat(depth).into_bytes().into_boxed_slice(),
                depth,
                body: cell.body(),
            },
            completed: 0,
            in_flight: 0,
            sending: false,
        })
    }

    /// Sends a batch on every idle connection (all of them, at first or
    /// after [`Client::drain`]); from now on every completed batch is
    /// followed by the next.
    pub fn start(&mut self) -> io::Result<()> {
        self.sending = true;
        let registry = self.poll.registry();
        for (index, conn) in self.conns.iter_mut().enumerate() {
            if conn.pending == 0 {
                conn.send_batch(&self.shape, registry, Token(index))?;
                self.in_flight += 1;
            }
        }
        Ok(())
    }

    /// Requests completed (answered and checked) so far, on all
    /// connections.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Runs the closed loops until `stop(self)` returns true; `stop` is
    /// checked after every `epoll_wait` (at least every 10 ms).
    ///
    /// # Errors
    ///
    /// Any socket error, a response that is not `200` with the expected
    /// body, or no response for 5 s while requests are outstanding.
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
                let was_pending = conn.pending > 0;
                self.completed += conn.progress(&self.shape, registry, token)? as u64;
                if was_pending && conn.pending == 0 {
                    if self.sending {
                        conn.send_batch(&self.shape, registry, token)?;
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
                        "no response for {STALL_TIMEOUT:?} with {} batches outstanding",
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

    /// Stops sending new batches and waits for every outstanding response.
    pub fn drain(&mut self) -> io::Result<()> {
        self.sending = false;
        self.run_until(|c| c.in_flight == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_parsed_and_checked() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\nServer: x\r\n\r\nHello, World!";
        assert_eq!(
            parse_response(ok, b"Hello, World!").unwrap(),
            Some(ok.len())
        );
        for end in 0..ok.len() {
            assert_eq!(parse_response(&ok[..end], b"Hello, World!").unwrap(), None);
        }
        assert!(parse_response(ok, b"Hello, world!").is_err());
        let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_response(not_found, b"").is_err());
    }
}
