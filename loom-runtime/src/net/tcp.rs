//! TCP: [`TcpListener`] and [`TcpStream`], shaped like std's.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::addr::{self, ToSocketAddrs};
use super::socket::Socket;
use super::timeout::check_timeout;
use crate::op::{self, Deadline};
use crate::sys::syscall;

/// Connections waiting to be accepted, at most (the kernel may cap it at
/// `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Longest pause between accepts while the process is out of file
/// descriptors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Options for [`TcpListener::bind_with`]: `SO_REUSEPORT` and the
/// `listen(2)` backlog.
///
/// # Examples
///
/// A listener that shares its port with the other loops' listeners, with
/// a deeper queue for connection bursts:
///
/// ```
/// use loom::net::{ListenOptions, TcpListener};
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let options = ListenOptions::new().reuse_port(true).backlog(4096);
///     let listener = TcpListener::bind_with("127.0.0.1:0", &options)?;
///     assert!(listener.local_addr()?.port() != 0);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ListenOptions {
    reuse_port: bool,
    /// Already clamped to what `listen(2)` takes.
    backlog: i32,
}

impl ListenOptions {
    /// No `SO_REUSEPORT`; a backlog of [`DEFAULT_BACKLOG`] — what
    /// [`TcpListener::bind`] uses.
    pub fn new() -> ListenOptions {
        ListenOptions {
            reuse_port: false,
            backlog: DEFAULT_BACKLOG,
        }
    }

    /// Sets `SO_REUSEPORT`, so several listeners — one per loop in a
    /// thread-per-core server — can bind the same address. Every one of
    /// them must set it, and on Linux they must belong to the same
    /// effective user.
    ///
    /// Linux spreads incoming connections over the group by a hash of
    /// each connection's addresses and ports. macOS and the BSDs let the
    /// listeners share the port but do not balance between them (one of
    /// them receives the connections; FreeBSD's separate `SO_REUSEPORT_LB`,
    /// not set here, would balance), so there one listener handing streams
    /// to the other loops is the better shape.
    #[must_use]
    pub fn reuse_port(mut self, on: bool) -> ListenOptions {
        self.reuse_port = on;
        self
    }

    /// Sets how many connections may wait to be accepted (`listen(2)`'s
    /// backlog); values past `i32::MAX` are clamped to it. The kernel caps
    /// it further, silently: at `net.core.somaxconn` on Linux (4096 since
    /// 5.4, 128 before), `kern.ipc.somaxconn` on macOS and the BSDs.
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> ListenOptions {
        self.backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self
    }
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions::new()
    }
}

/// A TCP socket server, listening for connections.
///
/// `accept` suspends only the calling fiber. When the process runs out of
/// file descriptors (`EMFILE`/`ENFILE`), `accept` returns that error and
/// the next `accept` first pauses (1 ms, doubling up to 100 ms, reset by a
/// success), so an accept loop that logs and retries does not spin; the
/// pending connections wait in the kernel's backlog meanwhile.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use loom::net::{TcpListener, TcpStream};
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = loom::spawn(move || -> std::io::Result<()> {
///         let (mut stream, _) = listener.accept()?;
///         let mut buf = [0; 5];
///         stream.read_exact(&mut buf)?;
///         stream.write_all(&buf)
///     });
///     let mut client = TcpStream::connect(addr)?;
///     client.write_all(b"hello")?;
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo)?;
///     assert_eq!(&echo, b"hello");
///     server.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    socket: Socket,
    backoff: Cell<Duration>,
}

impl TcpListener {
    /// Binds to `addr` (with `SO_REUSEADDR`, like std) and listens, with
    /// [`ListenOptions::new`]'s defaults; see [`bind_with`](Self::bind_with).
    ///
    /// # Errors
    /// `AddrInUse`, `AddrNotAvailable`, `PermissionDenied`, as the kernel
    /// reports them; the resolver's errors for host names.
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, &ListenOptions::new())
    }

    /// Binds to `addr` (with `SO_REUSEADDR`, like std) and listens, as
    /// `options` say. Each address `addr` resolves to is tried in turn.
    ///
    /// With [`reuse_port`](ListenOptions::reuse_port), a thread-per-core
    /// server binds one listener per loop to the same address; each loop
    /// then accepts only its own share of the connections, and no fiber
    /// ever touches another thread's socket.
    ///
    /// # Errors
    /// `AddrInUse` (the port is taken by a listener without
    /// `reuse_port`, or this one lacks it), `AddrNotAvailable` (no
    /// interface has that address), `PermissionDenied` (a privileged
    /// port), as the kernel reports them; `InvalidInput` or the resolver's
    /// errors for an address that does not parse or resolve.
    ///
    /// # Examples
    ///
    /// Two listeners sharing one port; in a server each would run on its
    /// own thread's runtime.
    ///
    /// ```
    /// use loom::net::{ListenOptions, TcpListener, TcpStream};
    ///
    /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
    ///     let options = ListenOptions::new().reuse_port(true);
    ///     let first = TcpListener::bind_with("127.0.0.1:0", &options)?;
    ///     let addr = first.local_addr()?;
    ///     let second = TcpListener::bind_with(addr, &options)?;
    ///     assert_eq!(second.local_addr()?, addr);
    ///
    ///     let _client = TcpStream::connect(addr)?;
    ///     // The kernel queued the connection on one of the two; the other
    ///     // listener's accept waits until it is cancelled.
    ///     let first = loom::spawn(move || first.accept().is_ok());
    ///     let second = loom::spawn(move || second.accept().is_ok());
    ///     loom::time::sleep(std::time::Duration::from_millis(100))?;
    ///     first.cancel();
    ///     second.cancel();
    ///     let accepted = [first.join().unwrap(), second.join().unwrap()];
    ///     assert_eq!(accepted.iter().filter(|&&ok| ok).count(), 1);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn bind_with<A: ToSocketAddrs>(
        addr: A,
        options: &ListenOptions,
    ) -> io::Result<TcpListener> {
        addr::each_addr(&addr, |addr| TcpListener::bind_one(addr, options))
    }

    fn bind_one(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
        let socket = Socket::new(
            addr::domain_of(&addr),
            libc::SOCK_STREAM,
            "TcpListener::bind",
        )?;
        socket.set_int(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        if options.reuse_port {
            socket.set_int(libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        let raw = addr::to_raw(addr);
        syscall!(bind(socket.fd(), (&raw const raw.storage).cast(), raw.len))?;
        syscall!(listen(socket.fd(), options.backlog))?;
        Ok(TcpListener::from_socket(socket))
    }

    fn from_socket(socket: Socket) -> TcpListener {
        TcpListener {
            socket,
            backoff: Cell::new(Duration::ZERO),
        }
    }

    /// Waits for a connection; returns it with the peer's address.
    ///
    /// # Errors
    /// The cancellation error (`ECANCELED`) if the fiber is cancelled; `EMFILE`/`ENFILE` (kind
    /// `Uncategorized`, raw OS error set) when out of file descriptors, see
    /// the type's documentation.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = self.accept_fd("TcpListener::accept")?;
        let stream = TcpStream::from_socket(self.socket.accepted(fd, "TcpListener::accept")?);
        Ok((stream, addr::from_raw(&peer)?))
    }

    /// `accept(2)`, leaving the new connection's descriptor as the kernel
    /// made it: not set up for any loop yet. Backs off while descriptors
    /// run out (see the type's documentation).
    #[track_caller]
    pub(super) fn accept_fd(&self, what: &str) -> io::Result<(OwnedFd, op::RawAddr)> {
        let pause = self.backoff.get();
        if !pause.is_zero() {
            crate::time::sleep(pause)?;
        }
        let mut peer = op::RawAddr::empty();
        match self
            .socket
            .run(what, op::Accept::new(self.socket.fd(), &mut peer), None)
        {
            Ok(fd) => {
                self.backoff.set(Duration::ZERO);
                Ok((fd, peer))
            }
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    let next = (pause * 2).clamp(Duration::from_millis(1), MAX_ACCEPT_BACKOFF);
                    self.backoff.set(next);
                }
                Err(e)
            }
        }
    }

    /// The timeouts a connection accepted here starts with.
    pub(super) fn accepted_timeouts(&self) -> [Option<Duration>; 2] {
        self.socket.timeout_values()
    }

    /// An iterator of [`accept`](TcpListener::accept)ed streams. Unlike
    /// std's it ends (returns `None`) when the fiber is cancelled, so a
    /// `for` loop over it stops at shutdown.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::socket_name(self.socket.fd(), false)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket
            .set_int(libc::IPPROTO_IP, libc::IP_TTL, ttl as i32)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket
            .get_int(libc::IPPROTO_IP, libc::IP_TTL)
            .map(|v| v as u32)
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// Wraps a std listener (made non-blocking or blocking as the loop's
    /// backend needs). Call inside a runtime.
    #[track_caller]
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Socket::adopt(OwnedFd::from(listener), "TcpListener::from_std")
            .map(TcpListener::from_socket)
    }

    /// Unwraps into a std listener in blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.socket.into_fd().map(std::net::TcpListener::from)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.socket.fd()).finish()
    }
}

/// Iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    /// The next connection or error; `None` once the fiber is cancelled,
    /// so `for stream in listener.incoming()` ends at shutdown.
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        match self.listener.accept() {
            Err(e) if crate::fiber::is_cancelled(&e) => None,
            result => Some(result.map(|(stream, _)| stream)),
        }
    }
}

/// A TCP connection. Implements `std::io::Read` and `Write`, for
/// `TcpStream` and for `&TcpStream` — so one fiber may read while another
/// writes: share it with `Rc<TcpStream>` and use `&*stream` in each.
///
/// Reads and writes suspend only the calling fiber; `set_read_timeout`
/// and `set_write_timeout` bound each call, failing with `WouldBlock`
/// (`EAGAIN`) like std on Unix. Writes never raise SIGPIPE: a closed peer
/// is an `BrokenPipe` or `ConnectionReset` error.
pub struct TcpStream {
    socket: Socket,
}

impl TcpStream {
    fn from_socket(socket: Socket) -> TcpStream {
        TcpStream { socket }
    }

    /// The socket under it, for ops built outside `net` (`io::splice`).
    #[cfg(target_os = "linux")]
    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Connects to `addr`, trying each resolved address in turn.
    ///
    /// # Errors
    /// `ConnectionRefused`, `TimedOut`, `NetworkUnreachable`... as the
    /// kernel reports them; the cancellation error if the fiber is cancelled.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        addr::each_addr(&addr, |addr| TcpStream::connect_one(addr, None))
    }

    /// Connects to `addr`, giving up after `timeout` with `TimedOut`.
    ///
    /// # Errors
    /// As for [`connect`](TcpStream::connect); `InvalidInput` for a zero
    /// timeout, like std.
    #[track_caller]
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        let deadline = Instant::now().checked_add(timeout).map(|at| Deadline {
            at,
            errno: libc::ETIMEDOUT,
        });
        TcpStream::connect_one(*addr, deadline)
    }

    fn connect_one(addr: SocketAddr, deadline: Option<Deadline>) -> io::Result<TcpStream> {
        let socket = Socket::new(
            addr::domain_of(&addr),
            libc::SOCK_STREAM,
            "TcpStream::connect",
        )?;
        let connect = op::Connect::new(socket.fd(), addr::to_raw(addr));
        socket.run("TcpStream::connect", connect, deadline)?;
        Ok(TcpStream::from_socket(socket))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        addr::socket_name(self.socket.fd(), true)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::socket_name(self.socket.fd(), false)
    }

    /// Shuts down the read half, the write half or both.
    #[track_caller]
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let shutdown = op::Shutdown::new(self.socket.fd(), how);
        self.socket.run("TcpStream::shutdown", shutdown, None)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket
            .set_int(libc::IPPROTO_TCP, libc::TCP_NODELAY, i32::from(nodelay))
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket
            .get_int(libc::IPPROTO_TCP, libc::TCP_NODELAY)
            .map(|v| v != 0)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket
            .set_int(libc::IPPROTO_IP, libc::IP_TTL, ttl as i32)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket
            .get_int(libc::IPPROTO_IP, libc::IP_TTL)
            .map(|v| v as u32)
    }

    crate::net::timeout::timeouts!();

    /// Receives without consuming (`MSG_PEEK`).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv("TcpStream::peek", buf, libc::MSG_PEEK)
    }

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// A second handle to the same connection (`dup`), e.g. to give a
    /// reader and a writer fiber one each. Timeouts are not copied.
    #[track_caller]
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        self.socket
            .try_clone("TcpStream::try_clone")
            .map(TcpStream::from_socket)
    }

    /// Wraps a connected std stream. Call inside a runtime.
    #[track_caller]
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Socket::adopt(OwnedFd::from(stream), "TcpStream::from_std").map(TcpStream::from_socket)
    }

    /// Sets up, for the current loop, a connection accepted on another
    /// (`TcpListener::serve_balanced`).
    pub(super) fn from_accepted(
        fd: OwnedFd,
        timeouts: [Option<Duration>; 2],
        what: &str,
    ) -> io::Result<TcpStream> {
        Socket::with_timeouts(fd, timeouts, what).map(TcpStream::from_socket)
    }

    /// Unwraps into a std stream in blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.socket.into_fd().map(std::net::TcpStream::from)
    }
}

crate::net::socket::stream_io!(TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.socket.fd()).finish()
    }
}

macro_rules! fd_impls {
    ($($t:ty),*) => {$(
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.socket.fd()
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.socket.as_owned())
            }
        }
    )*};
}
pub(crate) use fd_impls;
fd_impls!(TcpListener, TcpStream);
