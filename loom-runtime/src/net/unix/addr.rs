//! `sockaddr_un` and std's `SocketAddr`, both ways (see the module
//! documentation of `net::unix` for how an address std cannot build from
//! raw bytes is rebuilt).

use std::ffi::OsStr;
use std::io;
use std::mem::offset_of;
#[cfg(target_os = "android")]
use std::os::android::net::SocketAddrExt;
use std::os::fd::RawFd;
#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use crate::op::RawAddr;
use crate::sys::syscall;

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
pub(super) fn path_to_raw(path: &Path) -> io::Result<RawAddr> {
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
pub(super) fn std_to_raw(addr: &SocketAddr) -> io::Result<RawAddr> {
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
pub(super) fn raw_to_std(raw: &RawAddr) -> io::Result<SocketAddr> {
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
pub(super) fn socket_name(fd: RawFd, peer: bool) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::empty();
    if peer {
        syscall!(getpeername(fd, (&raw mut raw.storage).cast(), &mut raw.len))?;
    } else {
        syscall!(getsockname(fd, (&raw mut raw.storage).cast(), &mut raw.len))?;
    }
    raw_to_std(&raw)
}
