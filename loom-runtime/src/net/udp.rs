//! UDP: [`UdpSocket`], shaped like std's.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use super::addr::{self, ToSocketAddrs};
use super::socket::Socket;
use super::tcp::fd_impls;
use crate::op;
use crate::sys::syscall;

/// A UDP socket.
///
/// Sends and receives suspend only the calling fiber; `set_read_timeout`
/// and `set_write_timeout` bound each call, failing with `WouldBlock`
/// (`EAGAIN`) like std on Unix. A datagram longer than the buffer given to
/// a receive is truncated to it, as in std.
///
/// # Examples
///
/// ```
/// use loom::net::UdpSocket;
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let server = UdpSocket::bind("127.0.0.1:0")?;
///     let client = UdpSocket::bind("127.0.0.1:0")?;
///     client.send_to(b"ping", server.local_addr()?)?;
///     let mut buf = [0; 16];
///     let (n, from) = server.recv_from(&mut buf)?;
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(from, client.local_addr()?);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    socket: Socket,
}

impl UdpSocket {
    fn from_socket(socket: Socket) -> UdpSocket {
        UdpSocket { socket }
    }

    /// Binds to `addr`, trying each resolved address in turn.
    ///
    /// # Errors
    /// `AddrInUse`, `AddrNotAvailable`, `PermissionDenied`, as the kernel
    /// reports them; the resolver's errors for host names.
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        addr::each_addr(&addr, UdpSocket::bind_one)
    }

    fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = Socket::new(addr::domain_of(&addr), libc::SOCK_DGRAM, "UdpSocket::bind")?;
        let raw = addr::to_raw(addr);
        syscall!(bind(socket.fd(), (&raw const raw.storage).cast(), raw.len))?;
        Ok(UdpSocket::from_socket(socket))
    }

    /// Sets the default destination for [`send`](UdpSocket::send) and the
    /// only source [`recv`](UdpSocket::recv) accepts, trying each resolved
    /// address in turn. Never waits: a UDP connect only records the peer.
    ///
    /// # Errors
    /// `NetworkUnreachable`, `InvalidInput` (an address of the other
    /// family)... as the kernel reports them; the resolver's errors.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        addr::each_addr(&addr, |addr| {
            let raw = addr::to_raw(addr);
            syscall!(connect(
                self.socket.fd(),
                (&raw const raw.storage).cast(),
                raw.len
            ))
            .map(drop)
        })
    }

    /// Sends `buf` as one datagram to the connected peer; returns the bytes
    /// sent.
    ///
    /// # Errors
    /// `NotConnected` without a [`connect`](UdpSocket::connect);
    /// `ConnectionRefused` after the peer reported an earlier datagram
    /// unreachable; `WouldBlock` on a write timeout; `ECANCELED` if the
    /// fiber is cancelled.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.send("UdpSocket::send", buf)
    }

    /// Receives one datagram from the connected peer; returns its length
    /// (at most `buf.len()`).
    ///
    /// # Errors
    /// `WouldBlock` on a read timeout; `ConnectionRefused` after the peer
    /// reported an earlier datagram unreachable; `ECANCELED` if the fiber
    /// is cancelled.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv("UdpSocket::recv", buf, 0)
    }

    /// Like [`recv`](UdpSocket::recv), but leaves the datagram queued
    /// (`MSG_PEEK`).
    ///
    /// # Errors
    /// As for [`recv`](UdpSocket::recv).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv("UdpSocket::peek", buf, libc::MSG_PEEK)
    }

    /// Sends `buf` as one datagram to `addr` (its first resolved address,
    /// like std); returns the bytes sent.
    ///
    /// # Errors
    /// `InvalidInput` if `addr` resolves to nothing; the kernel's errors;
    /// `WouldBlock` on a write timeout; `ECANCELED` if the fiber is
    /// cancelled.
    #[track_caller]
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(addr) = addr.to_socket_addrs()?.next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        let send = op::SendTo::new(self.socket.fd(), buf, Some(addr::to_raw(addr)), 0);
        self.socket.run_write("UdpSocket::send_to", send)
    }

    /// Receives one datagram; returns its length (at most `buf.len()`) and
    /// the sender's address.
    ///
    /// # Errors
    /// As for [`recv`](UdpSocket::recv).
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, 0, "UdpSocket::recv_from")
    }

    /// Like [`recv_from`](UdpSocket::recv_from), but leaves the datagram
    /// queued (`MSG_PEEK`).
    ///
    /// # Errors
    /// As for [`recv`](UdpSocket::recv).
    #[track_caller]
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, libc::MSG_PEEK, "UdpSocket::peek_from")
    }

    #[track_caller]
    fn recv_from_flags(
        &self,
        buf: &mut [u8],
        flags: i32,
        what: &str,
    ) -> io::Result<(usize, SocketAddr)> {
        let mut from = op::RawAddr::empty();
        let recv = op::RecvFrom::new(self.socket.fd(), buf, &mut from, flags);
        let n = self.socket.run_read(what, recv)?;
        Ok((n, addr::from_raw(&from)?))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::socket_name(self.socket.fd(), false)
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `NotConnected` without a [`connect`](UdpSocket::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        addr::socket_name(self.socket.fd(), true)
    }

    /// Sets `SO_BROADCAST`: whether datagrams may go to a broadcast
    /// address.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.socket
            .set_int(libc::SOL_SOCKET, libc::SO_BROADCAST, i32::from(broadcast))
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket
            .get_int(libc::SOL_SOCKET, libc::SO_BROADCAST)
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

    /// Reads and clears `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// A second handle to the same socket (`dup`). Timeouts are not copied.
    #[track_caller]
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        self.socket
            .try_clone("UdpSocket::try_clone")
            .map(UdpSocket::from_socket)
    }

    /// Wraps a std socket (made non-blocking or blocking as the loop's
    /// backend needs). Call inside a runtime.
    #[track_caller]
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Socket::adopt(OwnedFd::from(socket), "UdpSocket::from_std").map(UdpSocket::from_socket)
    }

    /// Unwraps into a std socket in blocking mode.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.socket.into_fd().map(std::net::UdpSocket::from)
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.socket.fd()).finish()
    }
}

fd_impls!(UdpSocket);
