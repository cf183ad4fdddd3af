//! An fd other than a socket that fibers wait on: a pipe end (a child's
//! stdio, loom's own stdin and stdout), a signalfd, a pidfd.
//!
//! Two kinds, fixed when the fd is adopted:
//!
//! - [`FiberFd::transfer`]: bytes move with read/write ops. Like a socket,
//!   the fd is blocking on io_uring (the kernel waits inside the op) and
//!   non-blocking and registered with the poller on the poll backends.
//! - [`FiberFd::readiness`]: the fd stays non-blocking on every backend;
//!   a fiber waits with [`FiberFd::wait_readable`] and then makes the
//!   fd's own system call (reading a `signalfd_siginfo`, `waitid` on a
//!   pidfd), which cannot block the loop.
//!
//! Like sockets, a `FiberFd` belongs to the loop that adopted it (`!Send`).

use std::io;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::driver::poll::SourceKey;
use crate::net::socket::close;
use crate::op::{self, Readiness};
use crate::rt::current::{in_runtime, run_op, with_current};
use crate::sys::set_nonblocking;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct FiberFd {
    fd: ManuallyDrop<OwnedFd>,
    source: Option<SourceKey>,
    /// Made with [`FiberFd::transfer`]: handed back in blocking mode.
    transfer: bool,
    /// Registered with one thread's loop.
    _not_send: PhantomData<*const ()>,
}

impl FiberFd {
    /// Adopts an fd whose bytes move with [`read`](Self::read) and
    /// [`write`](Self::write) (a pipe end).
    pub(crate) fn transfer(fd: OwnedFd, what: &str) -> io::Result<FiberFd> {
        let source = with_current(what, |lp| lp.driver.adopt_fd(fd.as_raw_fd()))?;
        Ok(FiberFd::with(fd, source, true))
    }

    /// Adopts an fd that is waited for with
    /// [`wait_readable`](Self::wait_readable) and then read with a
    /// non-blocking system call of its own; it is made non-blocking here.
    pub(crate) fn readiness(fd: OwnedFd, what: &str) -> io::Result<FiberFd> {
        set_nonblocking(fd.as_raw_fd(), true)?;
        let source = with_current(what, |lp| lp.driver.register_fd(fd.as_raw_fd()))?;
        Ok(FiberFd::with(fd, source, false))
    }

    fn with(fd: OwnedFd, source: Option<SourceKey>, transfer: bool) -> FiberFd {
        FiberFd {
            fd: ManuallyDrop::new(fd),
            source,
            transfer,
            _not_send: PhantomData,
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The poll registration (`None` on io_uring), for an op on this fd
    /// built elsewhere (`io::splice`).
    #[cfg(target_os = "linux")]
    pub(crate) fn source(&self) -> Option<SourceKey> {
        self.source
    }

    /// `read(2)`, parking only the fiber until data (or end of file) is
    /// there. For fds made with [`transfer`](Self::transfer).
    #[track_caller]
    pub(crate) fn read(&self, what: &str, buf: &mut [u8]) -> io::Result<usize> {
        debug_assert!(self.transfer, "{what}: read on a readiness fd");
        run_op(
            what,
            op::Read::new(self.fd(), buf, Readiness::Read),
            self.source,
            None,
        )
    }

    /// `write(2)`, parking only the fiber until there is room. A reader
    /// that has gone is `BrokenPipe` (Rust programs ignore SIGPIPE).
    #[track_caller]
    pub(crate) fn write(&self, what: &str, buf: &[u8]) -> io::Result<usize> {
        debug_assert!(self.transfer, "{what}: write on a readiness fd");
        run_op(
            what,
            op::Write::new(self.fd(), buf, Readiness::Write),
            self.source,
            None,
        )
    }

    /// Parks the fiber until the fd is readable. The caller's next
    /// non-blocking call may still find nothing (another fiber took it
    /// first) and should then wait again.
    #[track_caller]
    pub(crate) fn wait_readable(&self, what: &str) -> io::Result<()> {
        run_op(what, op::WaitReadable::new(self.fd()), self.source, None)
    }

    /// Gives the fd back, unregistered; one made with `transfer` is
    /// blocking again, as std expects.
    pub(crate) fn into_fd(self) -> io::Result<OwnedFd> {
        let mut this = ManuallyDrop::new(self);
        this.deregister();
        // SAFETY: `this` is never dropped, so the fd is taken exactly once.
        let fd = unsafe { ManuallyDrop::take(&mut this.fd) };
        if this.transfer {
            set_nonblocking(fd.as_raw_fd(), false)?;
        }
        Ok(fd)
    }

    fn deregister(&mut self) {
        if let Some(source) = self.source.take()
            && in_runtime()
        {
            with_current("closing an fd", |lp| {
                lp.driver.release_fd(source, self.fd.as_raw_fd());
            });
        }
    }
}

impl AsRawFd for FiberFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl AsFd for FiberFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for FiberFd {
    fn drop(&mut self) {
        self.deregister();
        // SAFETY: drop runs once; the fd is not used afterwards.
        let fd = unsafe { ManuallyDrop::take(&mut self.fd) };
        close(fd);
    }
}
