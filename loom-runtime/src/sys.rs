//! Thin helpers over libc shared by every module that talks to the kernel.

use std::io;

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

/// `send` flag that turns SIGPIPE into an `EPIPE` error. macOS has no such
/// flag; sockets there get `SO_NOSIGPIPE` when they are created instead.
#[cfg(not(target_vendor = "apple"))]
pub(crate) const MSG_NOSIGNAL: i32 = libc::MSG_NOSIGNAL;
/// See above.
#[cfg(target_vendor = "apple")]
pub(crate) const MSG_NOSIGNAL: i32 = 0;

/// A socket address in the kernel's representation.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn empty() -> RawAddr {
        RawAddr {
            // SAFETY: all-zero bytes are a valid sockaddr_storage.
            storage: unsafe { std::mem::MaybeUninit::zeroed().assume_init() },
            len: size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAddr")
            .field("family", &self.storage.ss_family)
            .field("len", &self.len)
            .finish()
    }
}

/// `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)`, or its two-step equivalent where
/// there is no accept4. Fills `peer`.
pub(crate) fn accept(fd: std::os::fd::RawFd, peer: &mut RawAddr) -> io::Result<std::os::fd::RawFd> {
    peer.len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    #[cfg(not(target_vendor = "apple"))]
    {
        syscall!(accept4(
            fd,
            (&raw mut peer.storage).cast(),
            &mut peer.len,
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK
        ))
    }
    #[cfg(target_vendor = "apple")]
    {
        let new = syscall!(accept(fd, (&raw mut peer.storage).cast(), &mut peer.len))?;
        // SAFETY: `new` was just returned by accept and is owned here.
        let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) };
        set_cloexec(new)?;
        set_nonblocking(new, true)?;
        set_nosigpipe(new)?;
        Ok(std::os::fd::IntoRawFd::into_raw_fd(owned))
    }
}

/// Reads and clears a socket's pending error (`SO_ERROR`).
pub(crate) fn take_socket_error(fd: std::os::fd::RawFd) -> io::Result<Option<io::Error>> {
    let mut error: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        (&raw mut error).cast(),
        &mut len
    ))?;
    Ok((error != 0).then(|| io::Error::from_raw_os_error(error)))
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

/// Sets `FD_CLOEXEC`.
#[cfg(target_vendor = "apple")]
pub(crate) fn set_cloexec(fd: std::os::fd::RawFd) -> io::Result<()> {
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)).map(drop)
}

/// Sets `SO_NOSIGPIPE`, macOS's per-socket stand-in for `MSG_NOSIGNAL`.
#[cfg(target_vendor = "apple")]
pub(crate) fn set_nosigpipe(fd: std::os::fd::RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    syscall!(setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_NOSIGPIPE,
        (&raw const one).cast(),
        size_of::<libc::c_int>() as libc::socklen_t
    ))
    .map(drop)
}
