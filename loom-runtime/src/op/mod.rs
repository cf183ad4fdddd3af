//! Operations: one struct per system call, each with an io_uring encoding
//! ([`Op::sqe`]) and a readiness path ([`Op::readiness`], [`Op::attempt`]).
//! This layer only describes ops; the driver runs them on the calling
//! fiber's stack (`Driver::run` and its backends), keeping each op, its completion slot
//! and the caller's buffer in place until the kernel is done with them
//! (invariant 1, docs/ARCHITECTURE.md).

mod fs;
mod net;
mod poll;
#[cfg(target_os = "linux")]
mod process;
mod rw;
#[cfg(target_os = "linux")]
mod splice;

pub(crate) use crate::sys::RawAddr;
#[cfg(target_os = "linux")]
pub(crate) use fs::Statx;
pub(crate) use fs::{
    Close, Fsync, Ftruncate, LinkAt, MkDirAt, OpenAt, RenameAt, SymlinkAt, UnlinkAt,
};
pub(crate) use net::{Accept, Connect, RecvFrom, SendMsg, SendTo, Shutdown};
pub(crate) use poll::WaitReadable;
#[cfg(target_os = "linux")]
pub(crate) use poll::WaitWritable;
#[cfg(target_os = "linux")]
pub(crate) use process::{WaitId, empty_siginfo, reap_if_exited};
pub(crate) use rw::{MAX_IOVECS, Read, ReadAt, Readv, Recv, Send, Write, WriteAt, Writev};
#[cfg(target_os = "linux")]
pub(crate) use splice::Splice;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// How the poll backends run an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Try the non-blocking call; on `EAGAIN` wait until readable.
    Read,
    /// Try the non-blocking call; on `EAGAIN` wait until writable.
    Write,
    /// A call that may block (regular files): run it on the blocking pool.
    Blocking,
    /// A call that never blocks (shutdown): just make it.
    Immediate,
}

/// One kernel operation. See the module documentation.
///
/// Constructors follow one rule: an op whose memory the kernel touches
/// (buffers, addresses, paths) *borrows* it, with the op's lifetime, and
/// its constructor is safe; only an op handed raw pointers no lifetime can
/// describe (`SendMsg`'s `msghdr`, whose nested pointers the caller keeps
/// alive) has an `unsafe` constructor.
pub(crate) trait Op {
    /// What the op returns to its caller: the kernel's result as a byte
    /// count, nothing, or — only for ops that create one — a new
    /// descriptor the caller then owns.
    type Output: FromKernel;
    /// How poll backends run it.
    fn readiness(&self) -> Readiness;

    /// The io_uring encoding. Pointers in it refer to `self` or to buffers
    /// borrowed for the op's lifetime; `Driver::run` keeps both in place until the
    /// CQE has been reaped.
    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry;

    /// One attempt of the system call. For `Read`/`Write` ops the fd is
    /// non-blocking and `WouldBlock` means "wait for readiness"; for
    /// `Blocking` ops it runs on a pool thread (so the op must hold no
    /// thread-bound state).
    fn attempt(&mut self) -> io::Result<u32>;

    /// Whether an attempt that succeeded with `n` shows the source has
    /// nothing more to give right now, so a poll backend can wait for the
    /// next readiness event instead of paying for an attempt that would
    /// return `EAGAIN`. Edge-triggered readiness makes that safe: data
    /// arriving after the attempt raises a new event.
    fn drained(&self, n: u32) -> bool {
        let _ = n;
        false
    }

    /// Turns the kernel's result into the output; runs on the fiber. An op
    /// that must read something back from its own fields first overrides
    /// it.
    fn complete(self, result: io::Result<u32>) -> io::Result<Self::Output>
    where
        Self: Sized,
    {
        result.map(FromKernel::from_kernel)
    }
}

/// An op's output, made from the kernel's (non-negative) result.
pub(crate) trait FromKernel {
    fn from_kernel(result: u32) -> Self;
}

impl FromKernel for usize {
    fn from_kernel(result: u32) -> usize {
        result as usize
    }
}

impl FromKernel for () {
    fn from_kernel(_: u32) {}
}

/// Wraps the new descriptor at once, so one created by an op whose fiber
/// was cancelled meanwhile is still closed when the caller drops it.
impl FromKernel for OwnedFd {
    fn from_kernel(result: u32) -> OwnedFd {
        // SAFETY: only ops that create a descriptor have `OwnedFd` as their
        // output (`Op::Output`), so the kernel just returned a new fd that
        // nothing else owns.
        unsafe { OwnedFd::from_raw_fd(result as RawFd) }
    }
}

/// A point in time after which an op gives up, and the error it then
/// returns: `EAGAIN` (`WouldBlock`) for socket read/write timeouts, as std
/// does on Unix; `ETIMEDOUT` (`TimedOut`) for connect timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) errno: i32,
}

impl Deadline {
    pub(crate) fn error(self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }
}
