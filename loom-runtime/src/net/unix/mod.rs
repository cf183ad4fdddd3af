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

mod addr;
mod datagram;
mod listener;
mod stream;

use std::io;
use std::time::Duration;

use super::socket::Socket;
use super::tcp::fd_impls;
use crate::op::RawAddr;
use crate::sys::syscall;

pub use datagram::UnixDatagram;
pub use listener::{UnixIncoming, UnixListener};
pub use stream::{UCred, UnixStream};

/// Longest pause between accepts while the process is out of file
/// descriptors, and between connects to a listener whose backlog is full.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

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
    Ok((Socket::fresh(a, what)?, Socket::fresh(b, what)?))
}

fd_impls!(UnixListener, UnixStream, UnixDatagram);
