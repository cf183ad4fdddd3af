//! Socket addresses: loom's `ToSocketAddrs` (literal addresses resolve in
//! place; host names on the blocking pool, never on the loop) and the
//! conversions between `std::net::SocketAddr` and the kernel's sockaddr.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::op::RawAddr;

/// Addresses a socket can bind or connect to — std's
/// [`std::net::ToSocketAddrs`], except that a host name is resolved on the
/// blocking pool, suspending only the calling fiber. Literal addresses
/// (`"127.0.0.1:80"`, `"[::1]:80"`, a `SocketAddr`) never leave the loop.
///
/// Implemented for the same types as std's trait.
pub trait ToSocketAddrs {
    /// Resolves to one or more addresses.
    ///
    /// # Errors
    /// A malformed address or a failed lookup, as std reports it;
    /// The cancellation error if the fiber is cancelled while the lookup waits.
    fn to_socket_addrs(&self) -> io::Result<SocketAddrs>;
}

/// The addresses a [`ToSocketAddrs`] resolved to.
#[derive(Debug)]
pub struct SocketAddrs(SocketAddrsInner);

#[derive(Debug)]
enum SocketAddrsInner {
    One(Option<SocketAddr>),
    Many(std::vec::IntoIter<SocketAddr>),
}

impl SocketAddrs {
    fn one(addr: SocketAddr) -> SocketAddrs {
        SocketAddrs(SocketAddrsInner::One(Some(addr)))
    }
}

impl Iterator for SocketAddrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match &mut self.0 {
            SocketAddrsInner::One(addr) => addr.take(),
            SocketAddrsInner::Many(addrs) => addrs.next(),
        }
    }
}

macro_rules! literal_impls {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {
            fn to_socket_addrs(&self) -> io::Result<SocketAddrs> {
                Ok(SocketAddrs::one(SocketAddr::from(*self)))
            }
        }
    )*};
}
literal_impls!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for str {
    fn to_socket_addrs(&self) -> io::Result<SocketAddrs> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(SocketAddrs::one(addr));
        }
        let host = self.to_owned();
        resolve(move || std::net::ToSocketAddrs::to_socket_addrs(&host))
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addrs(&self) -> io::Result<SocketAddrs> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddrs::one(SocketAddr::new(ip, port)));
        }
        let host = host.to_owned();
        resolve(move || std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)))
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_socket_addrs(&self) -> io::Result<SocketAddrs> {
        (self.0.as_str(), self.1).to_socket_addrs()
    }
}

impl ToSocketAddrs for String {
    fn to_socket_addrs(&self) -> io::Result<SocketAddrs> {
        self.as_str().to_socket_addrs()
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_socket_addrs(&self) -> io::Result<SocketAddrs> {
        Ok(SocketAddrs(SocketAddrsInner::Many(
            Vec::from(self).into_iter(),
        )))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addrs(&self) -> io::Result<SocketAddrs> {
        (**self).to_socket_addrs()
    }
}

fn resolve<I>(lookup: impl FnOnce() -> io::Result<I> + Send + 'static) -> io::Result<SocketAddrs>
where
    I: Iterator<Item = SocketAddr>,
{
    let addrs = crate::blocking::unblock(move || lookup().map(Iterator::collect::<Vec<_>>))??;
    Ok(SocketAddrs(SocketAddrsInner::Many(addrs.into_iter())))
}

/// Tries `f` on each address in turn; the last error if all fail.
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// `addr` in the kernel's representation.
pub(crate) fn to_raw(addr: SocketAddr) -> RawAddr {
    let mut raw = RawAddr::empty();
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any
            // sockaddr type.
            let sin = unsafe { &mut *(&raw mut raw.storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            };
            raw.set_len(size_of::<libc::sockaddr_in>());
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&raw mut raw.storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_scope_id = v6.scope_id();
            raw.set_len(size_of::<libc::sockaddr_in6>());
        }
    }
    raw
}

/// A kernel sockaddr as a std address; `InvalidInput` for other families.
pub(crate) fn from_raw(raw: &RawAddr) -> io::Result<SocketAddr> {
    match i32::from(raw.storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which fits.
            let sin = unsafe { &*(&raw const raw.storage).cast::<libc::sockaddr_in>() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6, which fits.
            let sin6 = unsafe { &*(&raw const raw.storage).cast::<libc::sockaddr_in6>() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not an IP socket address (family {family})"),
        )),
    }
}

/// The address family constant for `addr`.
pub(crate) fn domain_of(addr: &SocketAddr) -> i32 {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// `getsockname(2)` or `getpeername(2)` as a std address.
pub(crate) fn socket_name(fd: std::os::fd::RawFd, peer: bool) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::empty();
    if peer {
        crate::sys::syscall!(getpeername(fd, (&raw mut raw.storage).cast(), &mut raw.len))?;
    } else {
        crate::sys::syscall!(getsockname(fd, (&raw mut raw.storage).cast(), &mut raw.len))?;
    }
    from_raw(&raw)
}
