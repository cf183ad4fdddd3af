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

/// CPU the server process is pinned to.
pub const SERVER_CPU: usize = 0;
/// CPU the load generator (the harness process) is pinned to.
pub const CLIENT_CPU: usize = 1;

/// Size of every server's per-connection read buffer.
pub const SERVER_BUF: usize = 16 * 1024;

/// A server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// loom on its io_uring backend.
    LoomIoUring,
    /// loom on its epoll backend.
    LoomEpoll,
    /// tokio, `current_thread` runtime.
    Tokio,
    /// monoio, io_uring driver.
    Monoio,
    /// may with one worker thread.
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
