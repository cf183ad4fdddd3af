//! Building blocks of the `echo` benchmark binary: the servers under test,
//! the load generator, and the Linux plumbing around them.
//!
//! * [`servers`] — one TCP echo server per [`Impl`], all written the same
//!   way: an accept loop that starts one fiber / task / coroutine per
//!   connection, which reads into a 16 KiB buffer and writes every byte
//!   back.
//! * [`client`] — the closed-loop load generator: one thread, mio
//!   (edge-triggered epoll), non-blocking sockets.
//! * [`sys`] — CPU pinning and per-process CPU time from `/proc`.
//! * [`strace`] — counting a running server's syscalls with `strace -c`.

pub mod client;
pub mod servers;
pub mod strace;
pub mod sys;

use std::fmt;
use std::str::FromStr;

/// CPU the server process is pinned to (with one server thread).
pub const SERVER_CPU: usize = 0;
/// CPU the load generator (the harness process) is pinned to.
pub const CLIENT_CPU: usize = 1;

/// CPUs a server with `threads` threads may run on: [`SERVER_CPU`] alone
/// for one thread; CPUs `0..threads` otherwise, which include
/// [`CLIENT_CPU`], so the load generator shares them with the server.
pub fn server_cpus(threads: usize) -> Vec<usize> {
    if threads <= 1 {
        vec![SERVER_CPU]
    } else {
        (0..threads).collect()
    }
}

/// The CPUs a measurement involves: the server's and the client's.
pub fn bench_cpus(threads: usize) -> Vec<usize> {
    let mut cpus = server_cpus(threads);
    if !cpus.contains(&CLIENT_CPU) {
        cpus.push(CLIENT_CPU);
    }
    cpus
}

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
}

impl Impl {
    /// Every implementation, in the default order.
    pub const ALL: [Impl; 5] = [
        Impl::LoomIoUring,
        Impl::LoomEpoll,
        Impl::Tokio,
        Impl::Monoio,
        Impl::May,
    ];

    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Impl::LoomIoUring => "loom-io_uring",
            Impl::LoomEpoll => "loom-epoll",
            Impl::Tokio => "tokio",
            Impl::Monoio => "monoio",
            Impl::May => "may",
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
        Impl::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Impl::ALL.iter().map(|i| i.name()).collect();
                format!("unknown impl {s:?} (expected one of {})", names.join(", "))
            })
    }
}
