//! Unix-domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], shaped like `std::os::unix::net`'s.
//!
//! # Addresses
//!
//! Filesystem paths are taken as `AsRef<Path>` (`bind`, `connect`,
//! `send_to`). Any `std::os::unix::net::SocketAddr` — also a Linux
//! abstract name, made with `SocketAddrExt::from_abstract_name` — goes
//! through the `*_addr` variants (`bind_addr`, `connect_addr`,
//! `send_to_addr`).
//!
//! Addresses come back as std's `SocketAddr` too. std has no constructor
//! from a raw `sockaddr_un`, so loom reads the kernel's bytes and rebuilds
//! the address through the public constructors: `from_pathname` for a
//! path, `from_abstract_name` for an abstract name, and for an unnamed
//! address `from_pathname("")` — std's encoding of an empty path is the
//! unnamed address — falling back to the address of a std
//! `UnixDatagram::unbound()` should a future std refuse the empty path.
//! The unnamed address is built once and then cloned.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::mem::offset_of;
use std::net::Shutdown;
#[cfg(target_os = "android")]
use std::os::android::net::SocketAddrExt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use super::socket::Socket;
use super::tcp::{DEFAULT_BACKLOG, fd_impls};
use crate::op::{self, RawAddr};
use crate::rt::event_loop::with_current;
use crate::sys::syscall;

/// Longest pause between accepts while the process is out of file
/// descriptors, and between connects to a listener whose backlog is full.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Where `sun_path` starts in a `sockaddr_un`.
const SUN_PATH_OFFSET: usize = offset_of!(libc::sockaddr_un, sun_path);

/// The size of `sun_path` (108 bytes on Linux, 104 on macOS).
const SUN_PATH_LEN: usize = size_of::<libc::sockaddr_un>() - SUN_PATH_OFFSET;

/// A `sockaddr_un` whose `sun_path` holds `bytes` from index `start` on
/// (the rest zero) and whose length counts `path_len` bytes of it.
fn sun_raw(start: usize, bytes: &[u8], path_len: usize) -> RawAddr {
    let mut raw = RawAddr::empty();
    // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr
    // type, sockaddr_un included, and all-zero bytes are a valid one.
    let sun = unsafe { &mut *(&raw mut raw.storage).cast::<libc::sockaddr_un>() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in sun.sun_path[start..].iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    raw.set_len(SUN_PATH_OFFSET + path_len);
    raw
}

/// The `sockaddr_un` for a filesystem path, NUL-terminated as std does.
fn path_to_raw(path: &Path) -> io::Result<RawAddr> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "paths must not contain interior null bytes",
        ));
    }
    if bytes.len() >= SUN_PATH_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path must be shorter than SUN_LEN",
        ));
    }
    // An empty path is the unnamed address: the family alone.
    let len = if bytes.is_empty() { 0 } else { bytes.len() + 1 };
    Ok(sun_raw(0, bytes, len))
}

/// The `sockaddr_un` for a std address: a path, an abstract name (Linux),
/// or the unnamed address (which Linux's `bind` turns into an autobound
/// abstract name).
fn std_to_raw(addr: &SocketAddr) -> io::Result<RawAddr> {
    if let Some(path) = addr.as_pathname() {
        return path_to_raw(path);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = addr.as_abstract_name() {
        if name.len() >= SUN_PATH_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "abstract name must be shorter than SUN_LEN",
            ));
        }
        // A leading NUL, then the name; no terminator.
        return Ok(sun_raw(1, name, 1 + name.len()));
    }
    Ok(sun_raw(0, &[], 0))
}

/// std's unnamed address; see the module documentation.
fn unnamed() -> io::Result<SocketAddr> {
    static UNNAMED: OnceLock<SocketAddr> = OnceLock::new();
    if let Some(addr) = UNNAMED.get() {
        return Ok(addr.clone());
    }
    let addr = match SocketAddr::from_pathname("") {
        Ok(addr) if addr.is_unnamed() => addr,
        _ => std::os::unix::net::UnixDatagram::unbound()?.local_addr()?,
    };
    Ok(UNNAMED.get_or_init(|| addr).clone())
}

/// A kernel `sockaddr_un` as a std address; `InvalidInput` for other
/// families.
fn raw_to_std(raw: &RawAddr) -> io::Result<SocketAddr> {
    let len = (raw.len as usize).min(size_of::<libc::sockaddr_un>());
    // Linux reports an unnamed address as the family alone; macOS and the
    // BSDs may report a length of zero.
    if len <= SUN_PATH_OFFSET {
        return unnamed();
    }
    let family = i32::from(raw.storage.ss_family);
    if family != libc::AF_UNIX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a Unix socket address (family {family})"),
        ));
    }
    // SAFETY: the family says it is a sockaddr_un, which fits in the
    // sockaddr_storage it is read from.
    let sun = unsafe { &*(&raw const raw.storage).cast::<libc::sockaddr_un>() };
    let mut bytes = [0u8; SUN_PATH_LEN];
    let bytes = &mut bytes[..len - SUN_PATH_OFFSET];
    for (dst, &src) in bytes.iter_mut().zip(&sun.sun_path) {
        *dst = src as u8;
    }
    if bytes[0] == 0 {
        // An abstract name on Linux; elsewhere (macOS reports unnamed
        // addresses as a zeroed path) the unnamed address.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return SocketAddr::from_abstract_name(&bytes[1..]);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return unnamed();
    }
    // The kernel may count the terminating NUL (Linux does); cut there.
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    SocketAddr::from_pathname(OsStr::from_bytes(&bytes[..end]))
}

/// `getsockname(2)` or `getpeername(2)` as a std address.
fn socket_name(fd: RawFd, peer: bool) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::empty();
    if peer {
        syscall!(getpeername(fd, (&raw mut raw.storage).cast(), &mut raw.len))?;
    } else {
        syscall!(getsockname(fd, (&raw mut raw.storage).cast(), &mut raw.len))?;
    }
    raw_to_std(&raw)
}

fn bind(socket: &Socket, raw: &RawAddr) -> io::Result<()> {
    syscall!(bind(socket.fd(), (&raw const raw.storage).cast(), raw.len)).map(drop)
}

/// Connects a datagram socket: that only records the peer, never waits.
fn connect_now(socket: &Socket, raw: &RawAddr) -> io::Result<()> {
    syscall!(connect(
        socket.fd(),
        (&raw const raw.storage).cast(),
        raw.len
    ))
    .map(drop)
}

/// A connected pair of sockets of `kind`, set up for the loop's backend.
fn socket_pair(kind: i32, what: &str) -> io::Result<(Socket, Socket)> {
    let (a, b) = crate::sys::socketpair(kind)?;
    Ok((Socket::adopt(a, what)?, Socket::adopt(b, what)?))
}

/// A Unix-domain socket server, listening for connections.
///
/// `accept` suspends only the calling fiber and backs off when the process
/// is out of file descriptors, as [`TcpListener`](super::TcpListener)'s
/// does. The socket file a path listener creates is not removed when the
/// listener is dropped (as in std); remove it yourself.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use loom::net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("loom-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let at = path.clone();
/// loom::Runtime::builder().build()?.run(move || -> std::io::Result<()> {
///     let listener = UnixListener::bind(&at)?;
///     let server = loom::spawn(move || -> std::io::Result<()> {
///         let (mut stream, _) = listener.accept()?;
///         let mut buf = [0; 5];
///         stream.read_exact(&mut buf)?;
///         stream.write_all(&buf)
///     });
///     let mut client = UnixStream::connect(&at)?;
///     client.write_all(b"hello")?;
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo)?;
///     assert_eq!(&echo, b"hello");
///     server.join().unwrap()
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    socket: Socket,
    backoff: Cell<Duration>,
}

impl UnixListener {
    /// Binds to the filesystem path `path` and listens.
    ///
    /// # Errors
    /// `AddrInUse` if `path` exists (even as a stale socket file);
    /// `NotFound`, `PermissionDenied`... for the directory, as the kernel
    /// reports them; `InvalidInput` for a path with a NUL byte or too long
    /// for a `sockaddr_un`.
    #[track_caller]
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_raw(&path_to_raw(path.as_ref())?)
    }

    /// Binds to `addr` — a path or, on Linux, an abstract name — and
    /// listens.
    ///
    /// # Errors
    /// As for [`bind`](UnixListener::bind).
    #[track_caller]
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::bind_raw(&std_to_raw(addr)?)
    }

    #[track_caller]
    fn bind_raw(raw: &RawAddr) -> io::Result<UnixListener> {
        let socket = Socket::new(libc::AF_UNIX, libc::SOCK_STREAM, "UnixListener::bind")?;
        bind(&socket, raw)?;
        syscall!(listen(socket.fd(), DEFAULT_BACKLOG))?;
        Ok(UnixListener::from_socket(socket))
    }

    fn from_socket(socket: Socket) -> UnixListener {
        UnixListener {
            socket,
            backoff: Cell::new(Duration::ZERO),
        }
    }

    /// Waits for a connection; returns it with the peer's address (usually
    /// unnamed: clients seldom bind).
    ///
    /// # Errors
    /// `ECANCELED` if the fiber is cancelled; `EMFILE`/`ENFILE` when out
    /// of file descriptors, see the type's documentation.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let pause = self.backoff.get();
        if !pause.is_zero() {
            crate::time::sleep(pause)?;
        }
        let mut peer = RawAddr::empty();
        match self.socket.run(
            "UnixListener::accept",
            op::Accept::new(self.socket.fd(), &mut peer),
            None,
        ) {
            Ok(fd) => {
                self.backoff.set(Duration::ZERO);
                let stream = UnixStream::from_socket(Socket::adopt(fd, "UnixListener::accept")?);
                Ok((stream, raw_to_std(&peer)?))
            }
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    let next = (pause * 2).clamp(Duration::from_millis(1), MAX_BACKOFF);
                    self.backoff.set(next);
                }
                Err(e)
            }
        }
    }

    /// An iterator of [`accept`](UnixListener::accept)ed streams. Unlike
    /// std's it ends (returns `None`) when the fiber is cancelled, so a
    /// `for` loop over it stops at shutdown.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_name(self.socket.fd(), false)
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// A second handle to the same listener (`dup`).
    #[track_caller]
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        self.socket
            .try_clone("UnixListener::try_clone")
            .map(UnixListener::from_socket)
    }

    /// Wraps a std listener (made non-blocking or blocking as the loop's
    /// backend needs). Call inside a runtime.
    #[track_caller]
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Socket::adopt(OwnedFd::from(listener), "UnixListener::from_std")
            .map(UnixListener::from_socket)
    }

    /// Unwraps into a std listener in blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.socket
            .into_fd()
            .map(std::os::unix::net::UnixListener::from)
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.socket.fd()).finish()
    }
}

/// Iterator returned by [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    /// The next connection or error; `None` once the fiber is cancelled,
    /// so `for stream in listener.incoming()` ends at shutdown.
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        match self.listener.accept() {
            Err(e) if crate::fiber::is_cancelled(&e) => None,
            result => Some(result.map(|(stream, _)| stream)),
        }
    }
}

/// Credentials of the process at the other end of a [`UnixStream`], as
/// the kernel recorded them when the connection (or pair) was made; see
/// [`UnixStream::peer_cred`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UCred {
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
    /// The peer's process id, where the platform reports it (Linux,
    /// Android, macOS).
    pub pid: Option<i32>,
}

/// A Unix-domain stream connection. Implements `std::io::Read` and
/// `Write`, for `UnixStream` and for `&UnixStream` — so one fiber may read
/// while another writes: share it with `Rc<UnixStream>` and use
/// `&*stream` in each.
///
/// Reads and writes suspend only the calling fiber; `set_read_timeout`
/// and `set_write_timeout` bound each call, failing with `WouldBlock`
/// (`EAGAIN`) like std. Writes never raise SIGPIPE: a closed peer is a
/// `BrokenPipe` or `ConnectionReset` error.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use loom::net::UnixStream;
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let (mut a, mut b) = UnixStream::pair()?;
///     let echo = loom::spawn(move || -> std::io::Result<()> {
///         let mut buf = [0; 4];
///         b.read_exact(&mut buf)?;
///         b.write_all(&buf)
///     });
///     a.write_all(b"ping")?;
///     let mut buf = [0; 4];
///     a.read_exact(&mut buf)?;
///     assert_eq!(&buf, b"ping");
///     echo.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    socket: Socket,
}

impl UnixStream {
    fn from_socket(socket: Socket) -> UnixStream {
        UnixStream { socket }
    }

    /// Connects to the socket at the filesystem path `path`.
    ///
    /// If the listener's backlog is full, waits until it has room (on the
    /// poll backends by retrying, 1 ms apart and doubling up to 100 ms).
    ///
    /// # Errors
    /// `NotFound` if nothing is at `path`; `ConnectionRefused` if nothing
    /// listens there (a stale socket file); `PermissionDenied`...;
    /// `InvalidInput` for a path with a NUL byte or too long;
    /// `ECANCELED` if the fiber is cancelled.
    #[track_caller]
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_raw(path_to_raw(path.as_ref())?)
    }

    /// Connects to `addr` — a path or, on Linux, an abstract name.
    ///
    /// # Errors
    /// As for [`connect`](UnixStream::connect).
    #[track_caller]
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect_raw(std_to_raw(addr)?)
    }

    #[track_caller]
    fn connect_raw(raw: RawAddr) -> io::Result<UnixStream> {
        const WHAT: &str = "UnixStream::connect";
        let socket = Socket::new(libc::AF_UNIX, libc::SOCK_STREAM, WHAT)?;
        let poll = with_current(WHAT, |lp| {
            if lp.current_fiber(WHAT).cancelled.get() {
                return Err(lp.refuse_cancelled());
            }
            Ok(!lp.driver.is_completion_based())
        })?;
        if !poll {
            // io_uring: the socket is blocking, so the kernel itself waits
            // for room in a full backlog.
            socket.run(WHAT, op::Connect::new(socket.fd(), raw), None)?;
            return Ok(UnixStream::from_socket(socket));
        }
        // A non-blocking Unix connect completes at once or fails; a full
        // backlog is `EAGAIN` (not `EINPROGRESS`, as for TCP), and no
        // readiness event announces room, so op::Connect's wait for
        // writability would never end. Retry after a pause instead.
        let mut pause = Duration::ZERO;
        loop {
            match connect_now(&socket, &raw) {
                Ok(()) => return Ok(UnixStream::from_socket(socket)),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    pause = (pause * 2).clamp(Duration::from_millis(1), MAX_BACKOFF);
                    crate::time::sleep(pause)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A connected pair of streams (`socketpair(2)`), e.g. to talk to a
    /// child fiber or process.
    #[track_caller]
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket_pair(libc::SOCK_STREAM, "UnixStream::pair")?;
        Ok((UnixStream::from_socket(a), UnixStream::from_socket(b)))
    }

    /// The remote address (unnamed for a pair or an unbound client).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket_name(self.socket.fd(), true)
    }

    /// The local address (unnamed unless bound).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_name(self.socket.fd(), false)
    }

    /// The peer process's credentials: `SO_PEERCRED` on Linux and Android,
    /// `getpeereid` (plus `LOCAL_PEERPID` on macOS) on macOS and the BSDs.
    ///
    /// # Errors
    /// The kernel's; `Unsupported` on other platforms.
    pub fn peer_cred(&self) -> io::Result<UCred> {
        let cred = crate::sys::peer_cred(self.socket.fd())?;
        Ok(UCred {
            uid: cred.uid,
            gid: cred.gid,
            pid: cred.pid,
        })
    }

    /// Shuts down the read half, the write half or both.
    #[track_caller]
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let shutdown = op::Shutdown::new(self.socket.fd(), how);
        self.socket.run("UnixStream::shutdown", shutdown, None)
    }

    super::stream::timeouts!();

    /// Receives without consuming (`MSG_PEEK`).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv("UnixStream::peek", buf, libc::MSG_PEEK)
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// A second handle to the same connection (`dup`), e.g. to give a
    /// reader and a writer fiber one each. Timeouts are not copied.
    #[track_caller]
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        self.socket
            .try_clone("UnixStream::try_clone")
            .map(UnixStream::from_socket)
    }

    /// Wraps a connected std stream. Call inside a runtime.
    #[track_caller]
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Socket::adopt(OwnedFd::from(stream), "UnixStream::from_std").map(UnixStream::from_socket)
    }

    /// Unwraps into a std stream in blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.socket
            .into_fd()
            .map(std::os::unix::net::UnixStream::from)
    }
}

super::stream::stream_io!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixStream");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.socket.fd()).finish()
    }
}

/// A Unix-domain datagram socket.
///
/// Sends and receives suspend only the calling fiber; `set_read_timeout`
/// and `set_write_timeout` bound each call, failing with `WouldBlock`
/// (`EAGAIN`) like std. A datagram longer than the buffer given to a
/// receive is truncated to it.
///
/// # Examples
///
/// ```
/// use loom::net::UnixDatagram;
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let (a, b) = UnixDatagram::pair()?;
///     a.send(b"one")?;
///     a.send(b"two")?;
///     let mut buf = [0; 8];
///     let n = b.recv(&mut buf)?;
///     assert_eq!(&buf[..n], b"one");
///     let n = b.recv(&mut buf)?;
///     assert_eq!(&buf[..n], b"two");
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    socket: Socket,
}

impl UnixDatagram {
    fn from_socket(socket: Socket) -> UnixDatagram {
        UnixDatagram { socket }
    }

    /// A datagram socket bound to the filesystem path `path`.
    ///
    /// # Errors
    /// As for [`UnixListener::bind`].
    #[track_caller]
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_raw(&path_to_raw(path.as_ref())?)
    }

    /// A datagram socket bound to `addr` — a path or, on Linux, an abstract
    /// name.
    ///
    /// # Errors
    /// As for [`UnixListener::bind`].
    #[track_caller]
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_raw(&std_to_raw(addr)?)
    }

    #[track_caller]
    fn bind_raw(raw: &RawAddr) -> io::Result<UnixDatagram> {
        let socket = UnixDatagram::unbound()?;
        bind(&socket.socket, raw)?;
        Ok(socket)
    }

    /// A datagram socket bound to no address. It can send (receivers see
    /// an unnamed sender), but nothing can address a datagram to it.
    #[track_caller]
    pub fn unbound() -> io::Result<UnixDatagram> {
        Socket::new(libc::AF_UNIX, libc::SOCK_DGRAM, "UnixDatagram::unbound")
            .map(UnixDatagram::from_socket)
    }

    /// A connected pair of datagram sockets (`socketpair(2)`).
    #[track_caller]
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = socket_pair(libc::SOCK_DGRAM, "UnixDatagram::pair")?;
        Ok((UnixDatagram::from_socket(a), UnixDatagram::from_socket(b)))
    }

    /// Sets the default destination for [`send`](UnixDatagram::send) and
    /// the only source [`recv`](UnixDatagram::recv) accepts. Never waits.
    ///
    /// # Errors
    /// `NotFound` if nothing is at `path`; `ConnectionRefused` if the
    /// socket there is not a datagram socket; `InvalidInput` for a bad path.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        connect_now(&self.socket, &path_to_raw(path.as_ref())?)
    }

    /// [`connect`](UnixDatagram::connect) to `addr` — a path or, on Linux,
    /// an abstract name.
    ///
    /// # Errors
    /// As for [`connect`](UnixDatagram::connect).
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        connect_now(&self.socket, &std_to_raw(addr)?)
    }

    /// Sends `buf` as one datagram to the connected peer; returns the bytes
    /// sent.
    ///
    /// # Errors
    /// `NotConnected` without a [`connect`](UnixDatagram::connect);
    /// `ConnectionRefused` once the peer is gone; `WouldBlock` on a write
    /// timeout; `ECANCELED` if the fiber is cancelled.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let send = op::Send::new(self.socket.fd(), buf, 0);
        self.socket.run_write("UnixDatagram::send", send)
    }

    /// Receives one datagram; returns its length (at most `buf.len()`).
    ///
    /// # Errors
    /// `WouldBlock` on a read timeout; `ECANCELED` if the fiber is
    /// cancelled.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let recv = op::Recv::new(self.socket.fd(), buf, 0);
        self.socket.run_read("UnixDatagram::recv", recv)
    }

    /// Like [`recv`](UnixDatagram::recv), but leaves the datagram queued
    /// (`MSG_PEEK`).
    ///
    /// # Errors
    /// As for [`recv`](UnixDatagram::recv).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let recv = op::Recv::new(self.socket.fd(), buf, libc::MSG_PEEK);
        self.socket.run_read("UnixDatagram::peek", recv)
    }

    /// Sends `buf` as one datagram to the socket at the filesystem path
    /// `path`; returns the bytes sent.
    ///
    /// # Errors
    /// `NotFound` if nothing is at `path`; `ConnectionRefused` if nothing
    /// is bound there; `InvalidInput` for a bad path; `WouldBlock` on a
    /// write timeout; `ECANCELED` if the fiber is cancelled.
    #[track_caller]
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        self.send_to_raw(buf, path_to_raw(path.as_ref())?)
    }

    /// [`send_to`](UnixDatagram::send_to) `addr` — a path or, on Linux, an
    /// abstract name.
    ///
    /// # Errors
    /// As for [`send_to`](UnixDatagram::send_to).
    #[track_caller]
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.send_to_raw(buf, std_to_raw(addr)?)
    }

    #[track_caller]
    fn send_to_raw(&self, buf: &[u8], to: RawAddr) -> io::Result<usize> {
        let send = op::SendTo::new(self.socket.fd(), buf, Some(to), 0);
        self.socket.run_write("UnixDatagram::send_to", send)
    }

    /// Receives one datagram; returns its length (at most `buf.len()`) and
    /// the sender's address (unnamed if the sender is not bound).
    ///
    /// # Errors
    /// As for [`recv`](UnixDatagram::recv).
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, 0, "UnixDatagram::recv_from")
    }

    /// Like [`recv_from`](UnixDatagram::recv_from), but leaves the
    /// datagram queued (`MSG_PEEK`).
    ///
    /// # Errors
    /// As for [`recv`](UnixDatagram::recv).
    #[track_caller]
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, libc::MSG_PEEK, "UnixDatagram::peek_from")
    }

    #[track_caller]
    fn recv_from_flags(
        &self,
        buf: &mut [u8],
        flags: i32,
        what: &str,
    ) -> io::Result<(usize, SocketAddr)> {
        let mut from = RawAddr::empty();
        let recv = op::RecvFrom::new(self.socket.fd(), buf, &mut from, flags);
        let n = self.socket.run_read(what, recv)?;
        Ok((n, raw_to_std(&from)?))
    }

    /// The local address (unnamed unless bound).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_name(self.socket.fd(), false)
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `NotConnected` without a [`connect`](UnixDatagram::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket_name(self.socket.fd(), true)
    }

    /// Shuts down the read half, the write half or both.
    #[track_caller]
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let shutdown = op::Shutdown::new(self.socket.fd(), how);
        self.socket.run("UnixDatagram::shutdown", shutdown, None)
    }

    super::stream::timeouts!();

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// A second handle to the same socket (`dup`). Timeouts are not copied.
    #[track_caller]
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        self.socket
            .try_clone("UnixDatagram::try_clone")
            .map(UnixDatagram::from_socket)
    }

    /// Wraps a std socket (made non-blocking or blocking as the loop's
    /// backend needs). Call inside a runtime.
    #[track_caller]
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Socket::adopt(OwnedFd::from(socket), "UnixDatagram::from_std")
            .map(UnixDatagram::from_socket)
    }

    /// Unwraps into a std socket in blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        self.socket
            .into_fd()
            .map(std::os::unix::net::UnixDatagram::from)
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixDatagram");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.socket.fd()).finish()
    }
}

fd_impls!(UnixListener, UnixStream, UnixDatagram);
