//! The accept loop and graceful shutdown: a fiber per connection in a
//! scope, at most [`Limits::max_connections`] at once; on a signal, stop
//! accepting, let every connection finish the requests it has, wait at
//! most the drain time, cancel the rest.

use std::cell::Cell;
use std::io;
use std::time::Duration;

use loom::fiber::{Scope, is_cancelled};
use loom::net::{TcpListener, TcpStream};
use loom::signal::Signals;
use loom::sync::local::{Semaphore, WaitGroup};

use super::connection::{Connection, Ending, Transport};
use super::{Limits, Request, Response};

/// How long the accept loop backs off when accepting fails for lack of
/// resources (out of file descriptors, say): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a server did, for its last log line.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: Cell<u64>,
    /// Requests answered.
    pub requests: Cell<u64>,
    /// Connections that ended in an error (a reset, a failed handshake).
    pub errors: Cell<u64>,
    /// Connections closed for idleness or a missed request deadline.
    pub timeouts: Cell<u64>,
}

/// A server's settings besides the listener and the handler.
#[derive(Debug)]
pub struct Server<'a> {
    /// Per-connection limits.
    pub limits: Limits,
    /// How long connections get to finish after the stop signal.
    pub drain: Duration,
    /// The signals that stop the server; it serves until one arrives.
    pub signals: &'a Signals,
}

impl Server<'_> {
    /// Serves `listener` until a signal arrives and the drain is over.
    /// `open` turns an accepted stream into the transport a connection is
    /// served on (the TLS handshake, for HTTPS); it runs on the
    /// connection's fiber.
    pub fn run<T, O, H>(&self, listener: &TcpListener, open: O, handler: H) -> io::Result<Stats>
    where
        T: Transport,
        O: Fn(TcpStream) -> io::Result<T>,
        H: Fn(&Request<'_>, &mut Response),
    {
        let stats = Stats::default();
        let stopping = Cell::new(false);
        let live = WaitGroup::new();
        let slots = Semaphore::new(self.limits.max_connections);
        let shared = Shared {
            limits: &self.limits,
            stats: &stats,
            stopping: &stopping,
            live: &live,
            open: &open,
            handler: &handler,
        };
        loom::fiber::scope(|s| -> io::Result<()> {
            let acceptor = s.spawn(|| shared.accept_loop(s, listener, &slots));
            let signal = self.signals.recv()?;
            log::info!("http: signal {signal}, draining");
            acceptor.cancel();
            stopping.set(true);
            match loom::time::with_timeout(self.drain, || live.wait()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    log::warn!("http: drain time passed, cancelling the connections left");
                    s.cancel();
                }
                Err(e) => return Err(e),
            }
            Ok(())
        })?;
        Ok(stats)
    }
}

/// What every connection fiber borrows from [`Server::run`]'s frame.
struct Shared<'a, O, H> {
    limits: &'a Limits,
    stats: &'a Stats,
    stopping: &'a Cell<bool>,
    live: &'a WaitGroup,
    open: &'a O,
    handler: &'a H,
}

impl<'a, T, O, H> Shared<'a, O, H>
where
    T: Transport,
    O: Fn(TcpStream) -> io::Result<T>,
    H: Fn(&Request<'_>, &mut Response),
{
    fn accept_loop<'scope>(
        &'scope self,
        s: &'scope Scope<'scope, '_>,
        listener: &TcpListener,
        slots: &'scope Semaphore,
    ) {
        loop {
            // At the connection limit, new connections wait in the listen
            // backlog rather than take descriptors the live ones need.
            let slot = match slots.acquire() {
                Ok(slot) => slot,
                Err(_) => return, // cancelled
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    self.live.add(1);
                    self.stats.connections.set(self.stats.connections.get() + 1);
                    s.spawn(move || {
                        self.connection(stream);
                        drop(slot);
                        self.live.done();
                    });
                }
                Err(e) if is_cancelled(&e) => return,
                Err(e) => {
                    log::warn!("http: accept: {e}");
                    if loom::time::sleep(ACCEPT_BACKOFF).is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn connection(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let served = loom::time::with_timeout(self.limits.request_timeout, || (self.open)(stream))
            .and_then(|mut io| {
                let mut connection = Connection::default();
                let mut handler = |request: &Request<'_>, response: &mut Response| {
                    (self.handler)(request, response)
                };
                let ending =
                    connection.serve(&mut io, self.limits, &mut handler, &|| self.stopping.get());
                self.stats
                    .requests
                    .set(self.stats.requests.get() + connection.requests);
                ending
            });
        match served {
            Ok(Ending::Idle | Ending::TimedOut) => {
                self.stats.timeouts.set(self.stats.timeouts.get() + 1)
            }
            Ok(_) => {}
            Err(e) if is_cancelled(&e) => {}
            Err(e) => {
                self.stats.errors.set(self.stats.errors.get() + 1);
                log::debug!("http: connection: {e}");
            }
        }
    }
}
