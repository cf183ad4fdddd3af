//! The Linux receiver: a signalfd for the set, after the set is blocked.
//!
//! The fd is a readiness fd ([`FiberFd::readiness`]): a fiber waits for
//! it to become readable and then reads one `signalfd_siginfo` with a
//! non-blocking `read(2)` on its own loop's thread. Never a read op: on
//! io_uring a read the kernel punts to one of its worker threads would be
//! made by that worker, and a signalfd read dequeues the *reader's*
//! signals.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{FromRawFd, OwnedFd};

use libc::c_int;

use crate::io::fd::FiberFd;
use crate::sys::signal::SignalSet;
use crate::sys::syscall;

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Receiver {
    fd: FiberFd,
}

impl Receiver {
    /// Blocks `set` in the calling thread — and in loop 0's, the one
    /// thread of the runtime that does not block every signal from its
    /// start — then opens the signalfd. `loop_index` is the calling
    /// fiber's loop.
    pub(super) fn open(set: SignalSet, loop_index: usize) -> io::Result<Receiver> {
        set.block_in_this_thread()?;
        if loop_index != 0 {
            block_on_loop_zero(set)?;
        }
        let mask = set.to_sigset();
        // SAFETY: `mask` is an initialised sigset_t; -1 asks for a new fd.
        let fd = syscall!(signalfd(-1, &mask, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
        // SAFETY: signalfd(2) just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let fd = FiberFd::readiness(fd, "loom::signal::Signals::new")?;
        Ok(Receiver { fd })
    }

    /// Parks the fiber until a signal of the set may be pending.
    pub(super) fn wait(&self) -> io::Result<()> {
        self.fd.wait_readable("loom::signal::Signals::recv")
    }

    /// Dequeues one pending signal of the set, if there is one.
    pub(super) fn take(&self) -> io::Result<Option<c_int>> {
        const SIZE: usize = size_of::<libc::signalfd_siginfo>();
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        // SAFETY: `info` is valid for writes of SIZE bytes; the fd is
        // non-blocking, so the call cannot park the loop's thread.
        match syscall!(read(self.fd.fd(), info.as_mut_ptr().cast(), SIZE)) {
            Ok(n) => {
                // A signalfd hands out whole records only.
                debug_assert_eq!(n as usize, SIZE);
                // SAFETY: read(2) filled the whole record.
                let info = unsafe { info.assume_init() };
                Ok(Some(info.ssi_signo as c_int))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Blocks `set` on loop 0's thread (the caller's fiber is on another
/// loop), waiting for it: a process-directed signal must find no thread
/// of the runtime that would take it with its default action.
fn block_on_loop_zero(set: SignalSet) -> io::Result<()> {
    let job = crate::rt::spawn_on(0, move || set.block_in_this_thread());
    match job.join() {
        Ok(blocked) => blocked,
        Err(payload) => match payload.downcast::<io::Error>() {
            // The fiber was cancelled, or loop 0 is shutting down.
            Ok(error) => Err(*error),
            Err(panic) => std::panic::resume_unwind(panic),
        },
    }
}
