//! Sockets as the platform makes them: every socket loom creates or
//! adopts is close-on-exec and never raises SIGPIPE (`MSG_NOSIGNAL` on
//! Linux and the BSDs, `SO_NOSIGPIPE` on macOS, which also lacks
//! `SOCK_CLOEXEC` and `accept4`), raw addresses, and the socket options
//! loom reads.

use std::io;
#[cfg(target_vendor = "apple")]
use std::os::fd::AsRawFd;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

#[cfg(target_vendor = "apple")]
use super::set_nonblocking;
use super::syscall;

/// `socket(2)`, close-on-exec.
pub(crate) fn socket(domain: i32, kind: i32) -> io::Result<OwnedFd> {
    #[cfg(not(target_vendor = "apple"))]
    let fd = syscall!(socket(domain, kind | libc::SOCK_CLOEXEC, 0))?;
    #[cfg(target_vendor = "apple")]
    let fd = syscall!(socket(domain, kind, 0))?;
    // SAFETY: socket(2) just returned this fd; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    #[cfg(target_vendor = "apple")]
    set_cloexec(fd.as_raw_fd())?;
    prepare(&fd)?;
    Ok(fd)
}

/// `socketpair(2)` of two connected `AF_UNIX` sockets, close-on-exec.
pub(crate) fn socketpair(kind: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1; 2];
    #[cfg(not(target_vendor = "apple"))]
    syscall!(socketpair(
        libc::AF_UNIX,
        kind | libc::SOCK_CLOEXEC,
        0,
        fds.as_mut_ptr()
    ))?;
    #[cfg(target_vendor = "apple")]
    syscall!(socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()))?;
    // SAFETY: socketpair(2) just returned these two fds; nothing else owns
    // them.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&a, &b] {
        #[cfg(target_vendor = "apple")]
        set_cloexec(fd.as_raw_fd())?;
        prepare(fd)?;
    }
    Ok((a, b))
}

/// What every socket loom touches needs, including ones handed over by
/// std: on macOS, which has no `MSG_NOSIGNAL`, `SO_NOSIGPIPE`.
pub(crate) fn prepare(fd: &OwnedFd) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    set_nosigpipe(fd.as_raw_fd())?;
    #[cfg(not(target_vendor = "apple"))]
    let _ = fd;
    Ok(())
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

    /// Records the address's length: in `len`, and — on macOS and the
    /// BSDs, whose sockaddrs start with their own length byte (`sa_len`,
    /// `sin_len`, `sun_len`) — in the address itself.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len as libc::socklen_t;
        #[cfg(any(
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly"
        ))]
        {
            self.storage.ss_len = len as u8;
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
pub(crate) fn accept(fd: RawFd, peer: &mut RawAddr) -> io::Result<RawFd> {
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
        let owned = unsafe { OwnedFd::from_raw_fd(new) };
        set_cloexec(new)?;
        set_nonblocking(new, true)?;
        set_nosigpipe(new)?;
        Ok(std::os::fd::IntoRawFd::into_raw_fd(owned))
    }
}

/// `getsockopt(2)` of a plain-data option of type `T`; `value` is what
/// the kernel then overwrites.
pub(crate) fn getsockopt<T: Copy>(fd: RawFd, level: i32, name: i32, mut value: T) -> io::Result<T> {
    let mut len = size_of::<T>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        level,
        name,
        (&raw mut value).cast(),
        &mut len
    ))?;
    Ok(value)
}

/// `setsockopt(2)` of a plain-data option of type `T`.
pub(crate) fn setsockopt<T: Copy>(fd: RawFd, level: i32, name: i32, value: T) -> io::Result<()> {
    let len = size_of::<T>() as libc::socklen_t;
    syscall!(setsockopt(fd, level, name, (&raw const value).cast(), len)).map(drop)
}

/// Reads and clears a socket's pending error (`SO_ERROR`).
pub(crate) fn take_socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let error: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, 0)?;
    Ok((error != 0).then(|| io::Error::from_raw_os_error(error)))
}

/// Sets `FD_CLOEXEC`.
#[cfg(target_vendor = "apple")]
fn set_cloexec(fd: RawFd) -> io::Result<()> {
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)).map(drop)
}

/// Sets `SO_NOSIGPIPE`, macOS's per-socket stand-in for `MSG_NOSIGNAL`.
#[cfg(target_vendor = "apple")]
fn set_nosigpipe(fd: RawFd) -> io::Result<()> {
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1 as libc::c_int)
}

/// The credentials of the process at the other end of a Unix socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerCred {
    pub(crate) uid: libc::uid_t,
    pub(crate) gid: libc::gid_t,
    /// Not on the BSDs other than macOS.
    pub(crate) pid: Option<libc::pid_t>,
}

/// The peer's credentials: `SO_PEERCRED` on Linux and Android,
/// `getpeereid` (plus `LOCAL_PEERPID` on macOS) on macOS and the BSDs.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_cred(fd: RawFd) -> io::Result<PeerCred> {
    let empty = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let cred = getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, empty)?;
    Ok(PeerCred {
        uid: cred.uid,
        gid: cred.gid,
        pid: Some(cred.pid),
    })
}

#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
pub(crate) fn peer_cred(fd: RawFd) -> io::Result<PeerCred> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    syscall!(getpeereid(fd, &mut uid, &mut gid))?;
    #[cfg(target_vendor = "apple")]
    let pid = getsockopt(fd, libc::SOL_LOCAL, libc::LOCAL_PEERPID, 0 as libc::pid_t).ok();
    #[cfg(not(target_vendor = "apple"))]
    let pid = None;
    Ok(PeerCred { uid, gid, pid })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)))]
pub(crate) fn peer_cred(_fd: RawFd) -> io::Result<PeerCred> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer credentials are not supported on this platform",
    ))
}

/// Sets `SO_RCVTIMEO` or `SO_SNDTIMEO` (`name`) as std does: `None` is a
/// zero `timeval` (no timeout); a duration below a microsecond is rounded
/// up to one, since zero would mean none.
pub(crate) fn set_socket_timeout(
    fd: RawFd,
    name: i32,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let timeval = match timeout {
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        Some(timeout) => {
            let tv_sec = libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX);
            let mut tv_usec = timeout.subsec_micros() as libc::suseconds_t;
            if tv_sec == 0 && tv_usec == 0 {
                tv_usec = 1;
            }
            libc::timeval { tv_sec, tv_usec }
        }
    };
    setsockopt(fd, libc::SOL_SOCKET, name, timeval)
}

/// Reads `SO_RCVTIMEO` or `SO_SNDTIMEO` (`name`) as the kernel keeps it
/// (Linux rounds it to its clock tick): `None` for no timeout.
pub(crate) fn socket_timeout(fd: RawFd, name: i32) -> io::Result<Option<Duration>> {
    let zero = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let timeval: libc::timeval = getsockopt(fd, libc::SOL_SOCKET, name, zero)?;
    Ok((timeval.tv_sec != 0 || timeval.tv_usec != 0)
        .then(|| Duration::new(timeval.tv_sec as u64, timeval.tv_usec as u32 * 1000)))
}
