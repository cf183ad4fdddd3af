//! Reaping a child process through its pidfd: `waitid(P_PIDFD, pidfd,
//! info, WEXITED)` (Linux 5.4).

use std::io;
use std::os::fd::RawFd;

use super::{Op, Readiness};
use crate::sys::syscall;

/// Reaps the child behind `pidfd` once it has exited, writing its
/// `siginfo_t` into the caller's `info`.
///
/// As a ring op (`IORING_OP_WAITID`, Linux 6.7) the kernel waits: the
/// pidfd must then be in blocking mode, because the kernel reads
/// `O_NONBLOCK` on a pidfd as `WNOHANG`. Its [`attempt`](Op::attempt) never
/// waits (`WNOHANG`) and fails with `WouldBlock` while the child runs, so
/// on the poll backends the driver retries it whenever the (non-blocking,
/// registered) pidfd turns readable, which it does when the child exits.
#[derive(Debug)]
pub(crate) struct WaitId<'info> {
    pidfd: RawFd,
    info: &'info mut libc::siginfo_t,
}

impl<'info> WaitId<'info> {
    /// The io_uring opcode, to ask the driver whether the kernel has it.
    pub(crate) const OPCODE: u8 = io_uring::opcode::WaitId::CODE;

    pub(crate) fn new(pidfd: RawFd, info: &'info mut libc::siginfo_t) -> WaitId<'info> {
        WaitId { pidfd, info }
    }
}

impl Op for WaitId<'_> {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Read
    }

    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::opcode;
        opcode::WaitId::new(libc::P_PIDFD, self.pidfd as libc::id_t, libc::WEXITED)
            .infop(std::ptr::from_mut(self.info).cast_const())
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        if reap_if_exited(self.pidfd, self.info)? {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

/// `waitid(P_PIDFD, pidfd, info, WEXITED | WNOHANG)`: reaps the child if it
/// has exited (`true`, `info` filled in) and never waits. Used by
/// [`WaitId::attempt`] and by `Child::try_wait` and the readiness wait,
/// which run it on the fiber directly.
pub(crate) fn reap_if_exited(pidfd: RawFd, info: &mut libc::siginfo_t) -> io::Result<bool> {
    *info = empty_siginfo();
    loop {
        match syscall!(waitid(
            libc::P_PIDFD,
            pidfd as libc::id_t,
            std::ptr::from_mut(info),
            libc::WEXITED | libc::WNOHANG,
        )) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A non-blocking pidfd makes a wait without WNOHANG fail with
            // EAGAIN; with it the kernel reports "still running" as success
            // and a zero pid. Take either as "still running".
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
            // SAFETY: waitid wrote a SIGCHLD siginfo (or zeroed the pid
            // when no child was ready): reading the pid is reading plain
            // integers.
            Ok(_) => return Ok(unsafe { info.si_pid() } != 0),
        }
    }
}

/// A `siginfo_t` for waitid to fill in.
pub(crate) fn empty_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is plain integers (and a union of them), for which
    // all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}
