//! [`UnixStream`] and the peer credentials it reports ([`UCred`]).

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::addr::{path_to_raw, socket_name, std_to_raw};
use super::{MAX_BACKOFF, connect_now, socket_pair};
use crate::net::socket::Socket;
use crate::op::{self, RawAddr};
use crate::rt::current::with_current;

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
    pub(super) socket: Socket,
}

impl UnixStream {
    pub(super) fn from_socket(socket: Socket) -> UnixStream {
        UnixStream { socket }
    }

    /// The socket under it, for ops built outside `net` (`io::splice`).
    #[cfg(target_os = "linux")]
    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
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

    crate::net::timeout::timeouts!();

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

crate::net::socket::stream_io!(UnixStream);

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
