//! One connection, served by one fiber in blocking style: wait (bounded by
//! the idle timeout) for a request to start, then — under the request
//! deadline — read until whole requests are in, answer them all with one
//! write, and go round again. Everything here is plain `Read`/`Write`
//! calls; loom turns each into a completion op and parks the fiber.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use loom::net::TcpStream;

use super::exchange::Exchange;
use super::{Limits, Request, Response, Status};

/// How often an idle connection looks whether the server is stopping: an
/// idle read is cut into slices this long.
const STOP_POLL: Duration = Duration::from_millis(200);
/// How long a closing connection waits for its client to close too.
const LINGER: Duration = Duration::from_secs(1);
/// Room for chunk-size lines beyond the body limit in the input buffer.
const CHUNK_FRAMING: usize = 64 * 1024;

/// A byte stream a connection is served over, with a way to end our
/// sending direction while still reading (TCP's half-close, TLS's
/// `close_notify` followed by it).
pub trait Transport: Read + Write {
    /// Tells the client no more answers are coming.
    fn close_write(&mut self) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn close_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Transport for &TcpStream {
    fn close_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// Why a connection ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The client closed between requests.
    ClientClosed,
    /// A response said `Connection: close` (the client asked, or its
    /// request was rejected).
    Closed,
    /// No request began within the idle timeout.
    Idle,
    /// A request did not arrive whole, or its answer not leave, within
    /// the request deadline.
    TimedOut,
    /// The server is stopping; every request read was answered.
    Stopped,
}

/// A connection's buffers: allocated when it is accepted, reused for every
/// request on it, so steady-state requests allocate nothing.
#[derive(Debug)]
pub struct Connection {
    input: Vec<u8>,
    /// Bytes of `input` read and not yet consumed.
    filled: usize,
    output: Vec<u8>,
    exchange: Exchange,
    /// Requests answered so far.
    pub requests: u64,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            // Room for a pipelined batch of small requests in one read.
            input: vec![0; 16 * 1024],
            filled: 0,
            output: Vec::with_capacity(16 * 1024),
            exchange: Exchange::default(),
            requests: 0,
        }
    }
}

/// What one round under the request deadline came to.
enum Round {
    Open,
    Close,
    /// The client closed with a request unfinished: nothing to answer.
    ClientGone,
}

impl Connection {
    /// Serves requests on `io` until it ends; `stopping` is polled between
    /// requests and while idle (every 200 ms while idle).
    ///
    /// The clock is read once per request, when its first bytes are in:
    /// that instant starts the request's deadline and, for the wait for the
    /// next request, the idle timeout (so idle time counts from the start of
    /// the previous request, which is at most a request timeout earlier
    /// than its end).
    pub fn serve<T: Transport>(
        &mut self,
        io: &mut T,
        limits: &Limits,
        handler: &mut impl FnMut(&Request<'_>, &mut Response),
        stopping: &dyn Fn() -> bool,
    ) -> io::Result<Ending> {
        let mut since = Instant::now();
        loop {
            if self.filled == 0
                && let Some(ending) = self.wait_for_request(io, limits, stopping, since)?
            {
                return Ok(ending);
            }
            since = Instant::now();
            let round = loom::time::with_deadline(since + limits.request_timeout, || {
                self.round(io, limits, handler, stopping())
            });
            match round {
                Ok(Round::Open) => {}
                Ok(Round::Close) => {
                    close_gracefully(io);
                    return Ok(if stopping() {
                        Ending::Stopped
                    } else {
                        Ending::Closed
                    });
                }
                Ok(Round::ClientGone) => return Ok(Ending::ClientClosed),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.time_out(io);
                    return Ok(Ending::TimedOut);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the first bytes of a request, until `since` plus the idle
    /// timeout; `Some` if the connection ends instead.
    fn wait_for_request<T: Transport>(
        &mut self,
        io: &mut T,
        limits: &Limits,
        stopping: &dyn Fn() -> bool,
        since: Instant,
    ) -> io::Result<Option<Ending>> {
        let idle_until = since + limits.idle_timeout;
        let mut now = since;
        loop {
            if stopping() {
                close_gracefully(io);
                return Ok(Some(Ending::Stopped));
            }
            if now >= idle_until {
                close_gracefully(io);
                return Ok(Some(Ending::Idle));
            }
            let until = idle_until.min(now + STOP_POLL);
            match loom::time::with_deadline(until, || io.read(&mut self.input)) {
                Ok(0) => return Ok(Some(Ending::ClientClosed)),
                Ok(n) => {
                    self.filled = n;
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => now = Instant::now(),
                // A TLS client that closes TCP without `close_notify`
                // between requests lost nothing: a close, not an error.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(Some(Ending::ClientClosed));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads until at least one whole request is in, answers every whole
    /// one, writes the answers at once.
    fn round<T: Transport>(
        &mut self,
        io: &mut T,
        limits: &Limits,
        handler: &mut impl FnMut(&Request<'_>, &mut Response),
        stopping: bool,
    ) -> io::Result<Round> {
        loop {
            let input = &self.input[..self.filled];
            let answered = self
                .exchange
                .answer(input, limits, handler, &mut self.output, stopping);
            if answered.requests > 0 {
                self.input.copy_within(answered.consumed..self.filled, 0);
                self.filled -= answered.consumed;
                self.requests += answered.requests as u64;
                // Cleared only once written: a deadline that passes during
                // the write finds it unsent (see `time_out`).
                io.write_all(&self.output).and_then(|()| io.flush())?;
                self.output.clear();
                return Ok(if answered.close {
                    Round::Close
                } else {
                    Round::Open
                });
            }
            if self.filled == self.input.len() && !self.grow(limits) {
                self.exchange
                    .reject(Status::PayloadTooLarge, &mut self.output);
                io.write_all(&self.output)?;
                self.output.clear();
                return Ok(Round::Close);
            }
            match io.read(&mut self.input[self.filled..])? {
                0 => return Ok(Round::ClientGone),
                n => self.filled += n,
            }
        }
    }

    /// Doubles the input buffer for a large request, up to what the limits
    /// allow; false if it is already that large.
    fn grow(&mut self, limits: &Limits) -> bool {
        let most = limits.max_head_bytes + limits.max_body_bytes + CHUNK_FRAMING;
        let len = self.input.len();
        if len >= most {
            return false;
        }
        self.input.resize((len * 2).min(most), 0);
        true
    }

    /// The request deadline passed: a client still sending its request
    /// hears 408 (best effort, briefly); one not reading its answer is
    /// just closed.
    fn time_out<T: Transport>(&mut self, io: &mut T) {
        if self.output.is_empty() {
            self.exchange
                .reject(Status::RequestTimeout, &mut self.output);
            let _ = loom::time::with_timeout(LINGER, || io.write_all(&self.output));
        }
        self.output.clear();
        close_gracefully(io);
    }
}

/// Ends our direction, then reads (and drops) until the client closes too,
/// for at most a second: closing with its bytes unread would make the
/// kernel reset the connection, and a reset can destroy answers the client
/// has not read yet.
fn close_gracefully<T: Transport>(io: &mut T) {
    if io.close_write().is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    let _ = loom::time::with_timeout(LINGER, || {
        while io.read(&mut sink)? > 0 {}
        Ok::<(), io::Error>(())
    });
}
