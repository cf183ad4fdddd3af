//! [`UnixDatagram`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::addr::{path_to_raw, raw_to_std, socket_name, std_to_raw};
use super::{bind, connect_now, socket_pair};
use crate::net::socket::Socket;
use crate::op::{self, RawAddr};

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
    pub(super) socket: Socket,
}

impl UnixDatagram {
    pub(super) fn from_socket(socket: Socket) -> UnixDatagram {
        UnixDatagram { socket }
    }

    /// A datagram socket bound to the filesystem path `path`.
    ///
    /// # Errors
    /// As for [`UnixListener::bind`](super::UnixListener::bind).
    #[track_caller]
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_raw(&path_to_raw(path.as_ref())?)
    }

    /// A datagram socket bound to `addr` — a path or, on Linux, an abstract
    /// name.
    ///
    /// # Errors
    /// As for [`UnixListener::bind`](super::UnixListener::bind).
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
        self.socket.send("UnixDatagram::send", buf)
    }

    /// Receives one datagram; returns its length (at most `buf.len()`).
    ///
    /// # Errors
    /// `WouldBlock` on a read timeout; `ECANCELED` if the fiber is
    /// cancelled.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv("UnixDatagram::recv", buf, 0)
    }

    /// Like [`recv`](UnixDatagram::recv), but leaves the datagram queued
    /// (`MSG_PEEK`).
    ///
    /// # Errors
    /// As for [`recv`](UnixDatagram::recv).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv("UnixDatagram::peek", buf, libc::MSG_PEEK)
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

    crate::net::timeout::timeouts!();

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
