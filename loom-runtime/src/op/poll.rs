//! Waiting for an fd to become readable, for fds whose data is taken with
//! a system call of its own once ready (a signalfd, a pidfd), or
//! writable (a splice's socket end, waited for before the splice).

use std::io;
use std::os::fd::RawFd;

use super::{Op, Readiness};
use crate::sys::syscall;

/// Completes once `fd` is readable (`POLLIN`), without reading anything.
#[derive(Debug)]
pub(crate) struct WaitReadable {
    fd: RawFd,
}

impl WaitReadable {
    pub(crate) fn new(fd: RawFd) -> WaitReadable {
        WaitReadable { fd }
    }
}

impl Op for WaitReadable {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Read
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::PollAdd::new(types::Fd(self.fd), libc::POLLIN as u32).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        let mut pollfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and a zero timeout: poll(2) only looks.
        match syscall!(poll(&mut pollfd, 1, 0))? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(pollfd.revents as u32),
        }
    }
}

/// Completes once `fd` is writable (`POLLOUT`), without writing anything.
/// Linux-only, as its one user (`io/splice.rs`) is.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct WaitWritable {
    fd: RawFd,
}

#[cfg(target_os = "linux")]
impl WaitWritable {
    pub(crate) fn new(fd: RawFd) -> WaitWritable {
        WaitWritable { fd }
    }
}

#[cfg(target_os = "linux")]
impl Op for WaitWritable {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Write
    }

    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::PollAdd::new(types::Fd(self.fd), libc::POLLOUT as u32).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        let mut pollfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and a zero timeout: poll(2) only looks.
        match syscall!(poll(&mut pollfd, 1, 0))? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(pollfd.revents as u32),
        }
    }
}
