//! The descriptors stdio opens for itself, so that fds 0, 1 and 2 — whose
//! open file descriptions the parent shell (or whoever started the
//! process) shares — never have their mode changed.
//!
//! `O_NONBLOCK` is a flag of the open file *description*, not of the fd:
//! setting it on fd 0 would make the shell's own terminal or pipe
//! non-blocking too, and it would stay so after this process exits. So the
//! poll backends get non-blocking I/O from a descriptor of their own:
//!
//! - [`reopen`]: a new, private description of the same pipe, FIFO or
//!   terminal (`open("/proc/self/fd/N")`, Linux only: macOS's `/dev/fd/N`
//!   duplicates the fd instead of reopening the file), whose mode is
//!   loom's to set;
//! - [`duplicate`]: a second fd for the *shared* description, registered
//!   with the poller but never switched: for a socket (made non-blocking
//!   per call with `MSG_DONTWAIT`) or a description someone else already
//!   made non-blocking.
//!
//! Either becomes a [`Registered`] fd of one loop, which remembers that
//! loop (weakly) and deregisters from it, not from whichever loop is
//! current when it is dropped: stdio keeps these fds per thread, and a
//! thread may run one runtime after another.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};

use crate::driver::poll::SourceKey;
use crate::rt::event_loop::EventLoop;
use crate::sys::syscall;

/// What kind of file an fd is, as far as choosing how to wait on it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A pipe, a FIFO or a character device (a terminal, `/dev/null`):
    /// shared with others only through its description, so reopening it
    /// gives a private one onto the same data.
    Stream,
    /// A socket: cannot be reopened, but `MSG_DONTWAIT` makes one call
    /// non-blocking without touching the description.
    Socket,
    /// A regular file, a block device, anything else (an eventfd) — or an
    /// fd that is not open: readiness may tell nothing, and a file's
    /// position must stay the one the parent shares, so only the original
    /// fd will do.
    File,
}

/// The kind of `fd`; an fd `fstat` refuses (closed) counts as a file, so
/// the calls on it report the error as std's would.
pub(crate) fn kind(fd: RawFd) -> FileKind {
    // SAFETY: all-zero bytes are a valid `stat` (plain integers).
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a valid, writable `struct stat`.
    if syscall!(fstat(fd, &mut stat)).is_err() {
        return FileKind::File;
    }
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFIFO | libc::S_IFCHR => FileKind::Stream,
        libc::S_IFSOCK => FileKind::Socket,
        _ => FileKind::File,
    }
}

/// A private, non-blocking, close-on-exec description of the pipe, FIFO
/// or terminal `fd` refers to, open for writing if `write`, else for
/// reading — only if `fd` itself is open that way, so a reopen never
/// grants access the original lacked.
///
/// Opened with `O_NONBLOCK`, because opening a FIFO end blocking waits
/// for the other end; and with `O_NOCTTY`, so a session leader without a
/// controlling terminal does not acquire one by reopening its stdin.
///
/// # Errors
/// `ENXIO` for a socket, or for a FIFO's write end with no reader;
/// `EACCES` when the process may not open it; `Unsupported` where there is
/// no way to reopen (anything but Linux).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn reopen(fd: RawFd, write: bool) -> io::Result<OwnedFd> {
    let access = syscall!(fcntl(fd, libc::F_GETFL))? & libc::O_ACCMODE;
    let (wanted, allowed) = if write {
        (libc::O_WRONLY, access != libc::O_RDONLY)
    } else {
        (libc::O_RDONLY, access != libc::O_WRONLY)
    };
    if !allowed {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    let path = format!("/proc/self/fd/{fd}\0");
    let flags = wanted | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let new = syscall!(open(path.as_ptr().cast(), flags))?;
    // SAFETY: open(2) just returned this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// See the Linux version: elsewhere there is no way to reopen.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn reopen(_fd: RawFd, _write: bool) -> io::Result<OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A close-on-exec duplicate of `fd`: the same, shared description.
pub(crate) fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    // Above the three stdio fds, so closing one of them and opening
    // something else never lands on the duplicate's number.
    let new = syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, 3))?;
    // SAFETY: fcntl(2) just returned this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// An fd of stdio's own, prepared for one loop's backend; see the module
/// documentation.
#[derive(Debug)]
pub(crate) struct Registered {
    fd: OwnedFd,
    source: Option<SourceKey>,
    /// The loop whose poller holds `source`. Weak: the fd must not keep a
    /// finished runtime's loop alive, and once the loop is gone its
    /// poller (and the registration) went with it.
    owner: Weak<EventLoop>,
}

impl Registered {
    /// A private description ([`reopen`]): blocking on io_uring (the
    /// kernel waits inside the op), non-blocking and registered on the
    /// poll backends — its mode is loom's alone.
    pub(crate) fn private(lp: &Rc<EventLoop>, fd: OwnedFd) -> io::Result<Registered> {
        let source = lp.driver.adopt_fd(fd.as_raw_fd())?;
        Ok(Registered::with(lp, fd, source))
    }

    /// A shared description ([`duplicate`]), registered with the poll
    /// backends without changing its mode.
    pub(crate) fn shared(lp: &Rc<EventLoop>, fd: OwnedFd) -> io::Result<Registered> {
        let source = lp.driver.register_fd(fd.as_raw_fd())?;
        Ok(Registered::with(lp, fd, source))
    }

    fn with(lp: &Rc<EventLoop>, fd: OwnedFd, source: Option<SourceKey>) -> Registered {
        Registered {
            fd,
            source,
            owner: Rc::downgrade(lp),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn source(&self) -> Option<SourceKey> {
        self.source
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(source) = self.source
            && let Some(owner) = self.owner.upgrade()
        {
            owner.driver.release_fd(source, self.fd.as_raw_fd());
        }
        // The OwnedFd closes the fd after this.
    }
}
