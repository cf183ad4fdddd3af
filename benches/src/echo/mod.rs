//! Building blocks of the `echo` benchmark binary: the servers under test,
//! the load generator, and the Linux plumbing around them.
//!
//! * [`servers`] — one TCP echo server per [`Impl`], all written the same
//!   way: an accept loop that starts one fiber / task / coroutine per
//!   connection, which reads into a 16 KiB buffer and writes every byte
//!   back.
//! * [`floor`] — the floors `raw-io_uring` and `raw-epoll`: the same echo
//!   server with no runtime, straight on the kernel interfaces.
//! * [`client`] — the closed-loop load generator: one thread, mio
//!   (edge-triggered epoll), non-blocking sockets, connections opened in
//!   batches; per-connection echo counts and round-trip times of the
//!   measured window.
//! * [`histogram`] — the fixed log-linear round-trip-time histogram the
//!   client records into.
//! * [`sys`] — CPU pinning, per-process CPU time and resident memory from
//!   `/proc`, raising `RLIMIT_NOFILE`.
//! * [`strace`] — counting a running server's syscalls with `strace -c`.
//!
//! The last two, and the CPU layout, live in [`crate::harness`] (the
//! `http` bench uses them too) and are re-exported here.

pub mod client;
pub mod floor;
pub mod histogram;
pub mod servers;

use std::fmt;
use std::str::FromStr;

pub use crate::harness::{CLIENT_CPU, SERVER_CPU, bench_cpus, server_cpus, strace, sys};

/// Size of every server's per-connection read buffer.
pub const SERVER_BUF: usize = 16 * 1024;

/// A server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// loom on its io_uring backend.
    LoomIoUring,
    /// loom on its epoll backend.
    LoomEpoll,
    /// tokio, `current_thread` runtime (`multi_thread` with N workers for
    /// N server threads).
    Tokio,
    /// monoio, io_uring driver (one runtime per server thread).
    Monoio,
    /// may with one worker thread (N workers for N server threads).
    May,
    /// The io_uring floor: no runtime, the bare ring (one thread only).
    RawIoUring,
    /// The epoll floor: no runtime, bare edge-triggered epoll (one thread
    /// only).
    RawEpoll,
    /// loom on io_uring, with N server threads: one listener whose
    /// connections go to the least-loaded loop
    /// (`TcpListener::serve_balanced`) instead of one `SO_REUSEPORT`
    /// listener per loop. The same as `LoomIoUring` with one thread.
    LoomIoUringBalanced,
    /// The same on epoll.
    LoomEpollBalanced,
}

impl Impl {
    /// Every implementation a plain run measures, in the default order.
    pub const ALL: [Impl; 7] = [
        Impl::LoomIoUring,
        Impl::LoomEpoll,
        Impl::Tokio,
        Impl::Monoio,
        Impl::May,
        Impl::RawIoUring,
        Impl::RawEpoll,
    ];

    /// The balanced-accept variants: `--impl` accepts them besides
    /// [`Impl::ALL`]; they differ from plain loom only with
    /// `--server-threads` above 1.
    pub const BALANCED: [Impl; 2] = [Impl::LoomIoUringBalanced, Impl::LoomEpollBalanced];

    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Impl::LoomIoUring => "loom-io_uring",
            Impl::LoomEpoll => "loom-epoll",
            Impl::Tokio => "tokio",
            Impl::Monoio => "monoio",
            Impl::May => "may",
            Impl::RawIoUring => "raw-io_uring",
            Impl::RawEpoll => "raw-epoll",
            Impl::LoomIoUringBalanced => "loom-io_uring-balanced",
            Impl::LoomEpollBalanced => "loom-epoll-balanced",
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Impl {
    type Err = String;

    fn from_str(s: &str) -> Result<Impl, String> {
        let named = || Impl::ALL.iter().chain(&Impl::BALANCED);
        named().find(|i| i.name() == s).copied().ok_or_else(|| {
            let names: Vec<_> = named().map(|i| i.name()).collect();
            format!("unknown impl {s:?} (expected one of {})", names.join(", "))
        })
    }
}
