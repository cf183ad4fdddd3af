//! [`UnixListener`] and its [`UnixIncoming`] iterator.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::addr::{path_to_raw, raw_to_std, socket_name, std_to_raw};
use super::stream::UnixStream;
use super::{MAX_BACKOFF, bind};
use crate::net::socket::Socket;
use crate::net::tcp::DEFAULT_BACKLOG;
use crate::op::{self, RawAddr};
use crate::sys::syscall;

/// A Unix-domain socket server, listening for connections.
///
/// `accept` suspends only the calling fiber and backs off when the process
/// is out of file descriptors, as [`TcpListener`](crate::net::TcpListener)'s
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
    pub(super) socket: Socket,
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

    pub(super) fn from_socket(socket: Socket) -> UnixListener {
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
                let stream =
                    UnixStream::from_socket(self.socket.accepted(fd, "UnixListener::accept")?);
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
