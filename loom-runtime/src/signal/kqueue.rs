//! The macOS/BSD receiver: a kqueue of its own with one `EVFILT_SIGNAL`
//! filter per signal, waited for through the loop's poller (a kqueue fd is
//! readable while it holds events) and drained with a zero-timeout
//! `kevent`.
//!
//! `EVFILT_SIGNAL` records every attempt to deliver the signal, even an
//! ignored one, but does not replace the signal's action: the action
//! still runs. So a signal whose default action would end or stop the
//! process is set to `SIG_IGN` here (a handler someone installed is left
//! alone, as are the signals ignored by default: turning SIGCHLD's action
//! into `SIG_IGN` would make the kernel reap children before anyone waits
//! for them). The thread masks do not matter to this receiver.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;

use libc::c_int;

use crate::io::fd::FiberFd;
use crate::sys::signal::SignalSet;
use crate::sys::syscall;

/// Signals whose default action is to do nothing: their action is kept.
const IGNORED_BY_DEFAULT: [c_int; 6] = [
    libc::SIGCHLD,
    libc::SIGURG,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGIO,
    libc::SIGINFO,
];

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Receiver {
    kqueue: FiberFd,
}

impl Receiver {
    /// Opens the kqueue and its filters, then takes the signals' default
    /// actions away. `_loop_index`: the thread masks play no part here.
    pub(super) fn open(set: SignalSet, _loop_index: usize) -> io::Result<Receiver> {
        // SAFETY: kqueue(2) takes no arguments.
        let fd = syscall!(kqueue())?;
        // SAFETY: kqueue(2) just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: F_SETFD on an fd this function owns.
        syscall!(fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC))?;
        for signal in set.iter() {
            // SAFETY: an all-zero kevent is a valid value of the plain C
            // struct; the fields that matter are set below.
            let mut change: libc::kevent = unsafe { std::mem::zeroed() };
            change.ident = signal as libc::uintptr_t;
            change.filter = libc::EVFILT_SIGNAL;
            change.flags = libc::EV_ADD;
            // SAFETY: one valid change and no event list.
            syscall!(kevent(
                fd.as_raw_fd(),
                &change,
                1,
                ptr::null_mut(),
                0,
                ptr::null()
            ))?;
        }
        // Filters first: a signal arriving between the two steps is then
        // recorded, not discarded.
        for signal in set.iter() {
            ignore_default_action(signal)?;
        }
        let kqueue = FiberFd::readiness(fd, "loom::signal::Signals::new")?;
        Ok(Receiver { kqueue })
    }

    /// Parks the fiber until a signal of the set may have been recorded.
    pub(super) fn wait(&self) -> io::Result<()> {
        self.kqueue.wait_readable("loom::signal::Signals::recv")
    }

    /// Takes one recorded signal of the set, if there is one. Several
    /// deliveries of one signal since the last call count as one, as
    /// pending signals do on Linux.
    pub(super) fn take(&self) -> io::Result<Option<c_int>> {
        // SAFETY: as above, an all-zero kevent is a valid value.
        let mut event: libc::kevent = unsafe { std::mem::zeroed() };
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: room for one event; a zero timeout only looks, so the
        // loop's thread never waits here.
        let n = syscall!(kevent(
            self.kqueue.fd(),
            ptr::null(),
            0,
            &mut event,
            1,
            &zero
        ))?;
        Ok((n == 1).then_some(event.ident as c_int))
    }
}

/// Sets `signal` to `SIG_IGN` if it still has its default action and that
/// action is not already to ignore it.
fn ignore_default_action(signal: c_int) -> io::Result<()> {
    if IGNORED_BY_DEFAULT.contains(&signal) {
        return Ok(());
    }
    // SAFETY: an all-zero sigaction is a valid value of the C struct.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a valid signal number, no new action, room for the old one.
    syscall!(sigaction(signal, ptr::null(), &mut current))?;
    if current.sa_sigaction != libc::SIG_DFL {
        return Ok(());
    }
    // SAFETY: as above.
    let mut ignore: libc::sigaction = unsafe { std::mem::zeroed() };
    ignore.sa_sigaction = libc::SIG_IGN;
    // SAFETY: a valid signal number and an initialised action.
    syscall!(sigaction(signal, &ignore, ptr::null_mut()))?;
    crate::sys::signal::note_ignored(signal);
    Ok(())
}
