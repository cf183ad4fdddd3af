//! One listener's connections spread over every loop of the runtime:
//! [`TcpListener::serve_balanced`].
//!
//! The other way to serve on several loops — one `SO_REUSEPORT` listener
//! per loop — leaves the split to the kernel, which hashes each
//! connection's addresses: a few connections are rarely split evenly, and
//! a loop that got more of them saturates while another idles. Here one
//! fiber accepts them all and hands each to the loop serving the fewest
//! connections at that moment, through that loop's mailbox
//! ([`crate::spawn_on`]); a connection for the acceptor's own loop is
//! spawned there directly.
//!
//! The descriptor travels as a bare `OwnedFd` and is set up (made
//! non-blocking and registered, as that backend wants) by the loop that
//! will serve it, so no socket is ever touched by two loops (invariant 2,
//! docs/ARCHITECTURE.md).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{TcpListener, TcpStream};
use crate::fiber::is_cancelled;

/// A loop's count of connections being served, alone on its cache lines:
/// each loop's handlers count themselves out as they finish.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Load(AtomicUsize);

/// How many connections of one `serve_balanced` each loop is serving.
#[derive(Debug)]
struct Loads {
    per_loop: Box<[Load]>,
}

impl Loads {
    fn new(loops: usize) -> Loads {
        Loads {
            per_loop: (0..loops).map(|_| Load::default()).collect(),
        }
    }

    /// The loop serving the fewest connections; of equals, the first from
    /// `start` on, so that ties rotate over the loops.
    fn least_loaded(&self, start: usize) -> usize {
        let loops = self.per_loop.len();
        (0..loops)
            .map(|offset| (start + offset) % loops)
            .min_by_key(|&index| self.per_loop[index].0.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

/// One connection counted into its loop's load until its handler returns
/// (or unwinds, or never starts because the fiber could not be made).
struct Served {
    loads: Arc<Loads>,
    index: usize,
}

impl Served {
    fn new(loads: &Arc<Loads>, index: usize) -> Served {
        loads.per_loop[index].0.fetch_add(1, Ordering::Relaxed);
        Served {
            loads: Arc::clone(loads),
            index,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.loads.per_loop[self.index]
            .0
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl TcpListener {
    /// Accepts connections until the calling fiber is cancelled, and runs
    /// `handler` for each in a new fiber on the loop serving the fewest of
    /// this listener's connections at that moment — the acceptor's own
    /// loop included. Ties go round the loops in turn.
    ///
    /// The alternative, one [`reuse_port`](super::ListenOptions::reuse_port)
    /// listener per loop, costs no hand-off but lets the kernel split the
    /// connections by a hash, which is uneven for a few connections.
    /// Here a connection handed to another loop travels through that
    /// loop's mailbox, in a block [`crate::spawn_on`] recycles.
    ///
    /// A connection whose fiber cannot be created (no stack left) is
    /// closed, with a warning in the log. Errors that concern one
    /// connection only — aborted or reset before it was accepted, out of
    /// descriptors (after the back-off [`accept`](TcpListener::accept)
    /// applies) — are skipped.
    ///
    /// # Errors
    /// Any other `accept` error, e.g. `EINVAL` when the socket is not
    /// listening. Cancellation of the calling fiber returns `Ok(())`.
    ///
    /// # Panics
    /// Outside a loom runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use loom::net::{TcpListener, TcpStream};
    ///
    /// let rt = loom::Runtime::builder().threads(2).build()?;
    /// rt.run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     let server = loom::spawn(move || {
    ///         listener.serve_balanced(|mut stream| {
    ///             // Which loop serves it: 0 or 1, whichever had fewer.
    ///             let _ = stream.write_all(&[loom::rt::loop_index() as u8]);
    ///         })
    ///     });
    ///     let mut loops = Vec::new();
    ///     let mut clients = Vec::new();
    ///     for _ in 0..2 {
    ///         let mut client = TcpStream::connect(addr)?;
    ///         let mut index = [0];
    ///         client.read_exact(&mut index)?;
    ///         loops.push(index[0]);
    ///         clients.push(client);
    ///     }
    ///     loops.sort();
    ///     assert_eq!(loops, [0, 1]);
    ///     server.cancel();
    ///     server.join().unwrap()
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn serve_balanced<F>(&self, handler: F) -> io::Result<()>
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        const WHAT: &str = "TcpListener::serve_balanced";
        let here = crate::rt::loop_index();
        let loads = Arc::new(Loads::new(crate::rt::loop_count()));
        let handler = Arc::new(handler);
        let timeouts = self.accepted_timeouts();
        let mut next = 0;
        loop {
            let fd = match self.accept_fd(WHAT) {
                Ok((fd, _peer)) => fd,
                Err(e) if is_cancelled(&e) => return Ok(()),
                Err(e) if concerns_one_connection(&e) => continue,
                Err(e) => return Err(e),
            };
            let index = loads.least_loaded(next);
            next = (index + 1) % loads.per_loop.len();
            let served = Served::new(&loads, index);
            let handler = Arc::clone(&handler);
            let serve = move || serve_one(fd, timeouts, &*handler, served);
            if index == here {
                if let Err(e) = crate::fiber::Builder::new().spawn(serve) {
                    log::warn!("loom: {WHAT}: closing a connection, no fiber for it: {e}");
                }
            } else {
                // Detached: the fiber reports nothing back. If it cannot be
                // created there, the closure — and the connection — is
                // dropped on that loop.
                drop(crate::spawn_on(index, serve));
            }
        }
    }
}

/// Runs on the loop chosen for the connection.
fn serve_one(
    fd: OwnedFd,
    timeouts: [Option<Duration>; 2],
    handler: &dyn Fn(TcpStream),
    _served: Served,
) {
    match TcpStream::from_accepted(fd, timeouts, "TcpListener::serve_balanced") {
        Ok(stream) => handler(stream),
        Err(e) => log::warn!("loom: TcpListener::serve_balanced: dropping a connection: {e}"),
    }
}

/// Accept errors after which the listener still works: the connection
/// went away before it was taken, or descriptors ran out for a moment.
fn concerns_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EPROTO)
    )
}
