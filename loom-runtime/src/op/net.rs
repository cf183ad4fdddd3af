//! Socket ops beyond plain byte moving: accept, connect, shutdown and the
//! message forms (sendmsg, and recvfrom/sendto built on recvmsg/sendmsg).
//!
//! Headers (`msghdr`, `iovec`) live inside the op; data buffers and the
//! addresses the kernel fills in are borrowed from the caller with the
//! op's lifetime. The driver's run (`Driver::run` and its backends) keeps both in place
//! until the kernel is done.

use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::os::fd::{OwnedFd, RawFd};

use super::{Op, Readiness};
use crate::sys::{RawAddr, syscall};

/// `accept4(2)`: a new connection, close-on-exec (and non-blocking on the
/// poll backends, which the caller then registers); the peer's address is
/// written into the caller's `peer`.
#[derive(Debug)]
pub(crate) struct Accept<'a> {
    fd: RawFd,
    peer: &'a mut RawAddr,
}

impl<'a> Accept<'a> {
    pub(crate) fn new(fd: RawFd, peer: &'a mut RawAddr) -> Accept<'a> {
        *peer = RawAddr::empty();
        Accept { fd, peer }
    }
}

impl Op for Accept<'_> {
    type Output = OwnedFd;

    fn readiness(&self) -> Readiness {
        Readiness::Read
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Accept::new(
            types::Fd(self.fd),
            (&raw mut self.peer.storage).cast(),
            &raw mut self.peer.len,
        )
        .flags(libc::SOCK_CLOEXEC)
        .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        let fd = crate::sys::accept(self.fd, self.peer)?;
        Ok(fd as u32)
    }
}

/// `connect(2)`. On the poll backends the first attempt starts the
/// connection (`EINPROGRESS`); later ones, after the socket turned
/// writable, read its outcome.
#[derive(Debug)]
pub(crate) struct Connect {
    fd: RawFd,
    addr: RawAddr,
    started: bool,
}

impl Connect {
    pub(crate) fn new(fd: RawFd, addr: RawAddr) -> Connect {
        Connect {
            fd,
            addr,
            started: false,
        }
    }
}

impl Op for Connect {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Write
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Connect::new(
            types::Fd(self.fd),
            (&raw const self.addr.storage).cast(),
            self.addr.len,
        )
        .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        if !self.started {
            self.started = true;
            return match syscall!(connect(
                self.fd,
                (&raw const self.addr.storage).cast(),
                self.addr.len
            )) {
                Ok(_) => Ok(0),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Err(e) => Err(e),
            };
        }
        if let Some(error) = crate::sys::take_socket_error(self.fd)? {
            return Err(error);
        }
        // Writable without an error can also be the state of a socket that
        // has not connected yet (epoll reports that at registration).
        let mut peer = RawAddr::empty();
        match syscall!(getpeername(
            self.fd,
            (&raw mut peer.storage).cast(),
            &mut peer.len
        )) {
            Ok(_) => Ok(0),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        }
    }
}

/// `shutdown(2)`.
#[derive(Debug)]
pub(crate) struct Shutdown {
    fd: RawFd,
    how: i32,
}

impl Shutdown {
    pub(crate) fn new(fd: RawFd, how: std::net::Shutdown) -> Shutdown {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        Shutdown { fd, how }
    }
}

impl Op for Shutdown {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Immediate
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Shutdown::new(types::Fd(self.fd), self.how).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        syscall!(shutdown(self.fd, self.how)).map(|_| 0)
    }
}

/// `sendmsg(2)` with a caller-built `msghdr`, always with `MSG_NOSIGNAL`.
#[derive(Debug)]
pub(crate) struct SendMsg {
    fd: RawFd,
    msg: *const libc::msghdr,
    flags: i32,
}

impl SendMsg {
    /// # Safety
    /// `msg` and everything it points to (names, iovecs, control buffers)
    /// stay valid and unaliased until the op has completed.
    pub(crate) unsafe fn new(fd: RawFd, msg: *const libc::msghdr, flags: i32) -> SendMsg {
        SendMsg {
            fd,
            msg,
            flags: flags | crate::sys::MSG_NOSIGNAL,
        }
    }
}

impl Op for SendMsg {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Write
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::SendMsg::new(types::Fd(self.fd), self.msg)
            .flags(self.flags as u32)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `msg` is valid for the op's lifetime (constructor contract).
        syscall!(sendmsg(self.fd, self.msg, self.flags)).map(|n| n as u32)
    }
}

/// `recvfrom(2)`, as a `recvmsg` whose header and iovec live in the op.
/// Returns the byte count; the sender's address goes into the caller's
/// `from`.
#[derive(Debug)]
pub(crate) struct RecvFrom<'a> {
    fd: RawFd,
    iov: libc::iovec,
    from: &'a mut RawAddr,
    msg: libc::msghdr,
    flags: i32,
    /// The caller's buffer, borrowed while the op exists.
    _buffer: PhantomData<&'a mut [u8]>,
}

impl<'a> RecvFrom<'a> {
    pub(crate) fn new(
        fd: RawFd,
        buf: &'a mut [u8],
        from: &'a mut RawAddr,
        flags: i32,
    ) -> RecvFrom<'a> {
        *from = RawAddr::empty();
        RecvFrom {
            _buffer: PhantomData,
            fd,
            iov: libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len().min(super::rw::MAX_RW),
            },
            from,
            // SAFETY: an all-zero msghdr is valid (no buffers); `link`
            // fills in the pointers once the op has its final address.
            msg: unsafe { MaybeUninit::zeroed().assume_init() },
            flags,
        }
    }

    /// Points the header at the op's own fields; called at the op's final
    /// address, right before the kernel sees it.
    fn link(&mut self) -> *mut libc::msghdr {
        self.msg.msg_name = (&raw mut self.from.storage).cast();
        self.msg.msg_namelen = self.from.len;
        self.msg.msg_iov = &raw mut self.iov;
        self.msg.msg_iovlen = 1;
        &raw mut self.msg
    }
}

impl Op for RecvFrom<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Read
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        let msg = self.link();
        opcode::RecvMsg::new(types::Fd(self.fd), msg)
            .flags(self.flags as u32)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        let msg = self.link();
        // SAFETY: `msg` points into this op, whose buffers are valid.
        syscall!(recvmsg(self.fd, msg, self.flags)).map(|n| n as u32)
    }

    /// Also records the address's length, which the kernel wrote into the
    /// header.
    fn complete(self, result: io::Result<u32>) -> io::Result<usize> {
        let n = result?;
        self.from.len = self.msg.msg_namelen;
        Ok(n as usize)
    }
}

/// `sendto(2)`, as a `sendmsg` whose header and iovec live in the op.
#[derive(Debug)]
pub(crate) struct SendTo<'a> {
    /// The caller's buffer, borrowed while the op exists.
    _buffer: PhantomData<&'a [u8]>,
    fd: RawFd,
    iov: libc::iovec,
    to: RawAddr,
    msg: libc::msghdr,
    flags: i32,
}

impl<'a> SendTo<'a> {
    /// `to` of `None` sends to the connected peer.
    pub(crate) fn new(fd: RawFd, buf: &'a [u8], to: Option<RawAddr>, flags: i32) -> SendTo<'a> {
        let mut op = SendTo {
            _buffer: PhantomData,
            fd,
            iov: libc::iovec {
                iov_base: buf.as_ptr().cast_mut().cast(),
                iov_len: buf.len().min(super::rw::MAX_RW),
            },
            to: to.unwrap_or_else(RawAddr::empty),
            // SAFETY: an all-zero msghdr is valid (no buffers).
            msg: unsafe { MaybeUninit::zeroed().assume_init() },
            flags: flags | crate::sys::MSG_NOSIGNAL,
        };
        if to.is_none() {
            op.to.len = 0;
        }
        op
    }

    fn link(&mut self) -> *const libc::msghdr {
        if self.to.len > 0 {
            self.msg.msg_name = (&raw mut self.to.storage).cast();
            self.msg.msg_namelen = self.to.len;
        }
        self.msg.msg_iov = &raw mut self.iov;
        self.msg.msg_iovlen = 1;
        &raw const self.msg
    }
}

impl Op for SendTo<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Write
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        let msg = self.link();
        opcode::SendMsg::new(types::Fd(self.fd), msg)
            .flags(self.flags as u32)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        let msg = self.link();
        // SAFETY: `msg` points into this op, whose buffers are valid.
        syscall!(sendmsg(self.fd, msg, self.flags)).map(|n| n as u32)
    }
}
