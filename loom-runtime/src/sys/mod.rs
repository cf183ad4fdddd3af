//! The platform layer: thin helpers over libc for every module that talks
//! to the kernel, with the differences between Linux, macOS and the BSDs
//! kept here (and in `socket.rs`) rather than spread through the callers.

use std::io;

pub(crate) mod signal;
mod socket;

pub(crate) use socket::{
    MSG_NOSIGNAL, RawAddr, accept, getsockopt, peer_cred, prepare as prepare_socket,
    set_socket_timeout, setsockopt, socket, socket_timeout, socketpair, take_socket_error,
};

/// Calls a libc function and turns the C convention (`-1` plus `errno`) into
/// `io::Result`, so error handling lives in one place rather than in a
/// hundred `if ret < 0` checks.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the caller of `syscall!` upholds the libc function's own
        // contract for the arguments it passes; see each call site.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// The system page size, read once.
pub(crate) fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as usize } else { 4096 };
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// Rounds `n` up to a multiple of `align` (a power of two).
pub(crate) const fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// The error every blocking call of a cancelled fiber returns: the OS
/// error `ECANCELED` ("Operation canceled"). Not `ErrorKind::Interrupted`:
/// std's `read_exact`, `write_all`, `io::copy` and most blocking-style
/// crates retry on `Interrupted`, which would spin a cancelled fiber
/// forever. A raw OS error carries no message box, so cancelling does not
/// allocate.
pub(crate) fn cancelled() -> io::Error {
    io::Error::from_raw_os_error(libc::ECANCELED)
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: std::os::fd::RawFd, nonblocking: bool) -> io::Result<()> {
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    let wanted = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted != flags {
        syscall!(fcntl(fd, libc::F_SETFL, wanted))?;
    }
    Ok(())
}
