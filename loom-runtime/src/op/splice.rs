//! `splice(2)`: bytes moved between two fds, one of them a pipe, inside
//! the kernel — they never pass through user memory. Linux only.
//!
//! The op holds no memory of the caller's: only the two fds, which the
//! caller's types keep open while the op runs (their owners cannot close
//! while borrowed), so neither the kernel nor a blocking-pool thread can
//! touch anything that goes away under it.

use std::io;
use std::os::fd::RawFd;

use super::rw::MAX_RW;
use super::{Op, Readiness};
use crate::sys::syscall;

/// `splice(2)` from `fd_in` to `fd_out` at their current positions
/// (sockets and pipes have none: the offsets are always "none").
///
/// On io_uring the fds are in blocking mode and `IORING_OP_SPLICE` waits
/// inside the kernel, on one of the ring's worker threads (the kernel
/// always runs a splice there; the caller polls socket ends first so the
/// worker rarely waits long). On the poll backends the fds are non-blocking
/// and the op is made once with `SPLICE_F_NONBLOCK` (`Immediate`): on
/// `EAGAIN` the caller finds out which of the two fds was not ready and
/// waits for that one (`io/splice.rs`), since a readiness op waits on one
/// fd only.
#[derive(Debug)]
pub(crate) struct Splice {
    fd_in: RawFd,
    fd_out: RawFd,
    len: u32,
    flags: u32,
}

impl Splice {
    /// Moves at most `len` bytes; `nonblocking` adds `SPLICE_F_NONBLOCK`,
    /// so a full or empty pipe is `EAGAIN` rather than a wait.
    pub(crate) fn new(fd_in: RawFd, fd_out: RawFd, len: usize, nonblocking: bool) -> Splice {
        let flags = if nonblocking {
            libc::SPLICE_F_NONBLOCK
        } else {
            0
        };
        Splice {
            fd_in,
            fd_out,
            len: len.min(MAX_RW) as u32,
            flags,
        }
    }
}

impl Op for Splice {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Immediate
    }

    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        // Offset -1: neither end has (or uses) a file position.
        opcode::Splice::new(
            types::Fd(self.fd_in),
            -1,
            types::Fd(self.fd_out),
            -1,
            self.len,
        )
        .flags(self.flags)
        .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: null offsets (use no position); the fds are plain
        // numbers the kernel checks; nothing of ours is written.
        let n = syscall!(splice(
            self.fd_in,
            std::ptr::null_mut(),
            self.fd_out,
            std::ptr::null_mut(),
            self.len as usize,
            self.flags
        ))?;
        Ok(n as u32)
    }
}
