//! Byte-moving ops: recv/send on sockets, read/write (and vectored forms)
//! on sockets, pipes and files, and positional read_at/write_at.
//!
//! Each holds the caller's buffer as a raw pointer and length, for the
//! kernel, and borrows it (the `'a` of the op) so the compiler checks that
//! the buffer outlives the op; the driver's run (`Driver::run` and its backends) does not
//! return before the kernel is done with it (invariant 1,
//! docs/ARCHITECTURE.md).

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;

use super::{Op, Readiness};
use crate::sys::syscall;

/// Largest single transfer: Linux caps read/write at this anyway, and it
/// fits io_uring's 32-bit length.
pub(crate) const MAX_RW: usize = 0x7fff_f000;

fn clamp(len: usize) -> u32 {
    len.min(MAX_RW) as u32
}

/// `recv(2)` into a borrowed buffer.
#[derive(Debug)]
pub(crate) struct Recv<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a mut [u8]>,
    fd: RawFd,
    buf: *mut u8,
    len: u32,
    flags: i32,
    /// A byte stream read without flags: a short read means the socket's
    /// receive queue is empty (see [`Op::drained`]).
    stream: bool,
}

impl<'a> Recv<'a> {
    pub(crate) fn new(fd: RawFd, buf: &'a mut [u8], flags: i32) -> Recv<'a> {
        Recv {
            _buffers: PhantomData,
            fd,
            buf: buf.as_mut_ptr(),
            len: clamp(buf.len()),
            flags,
            stream: false,
        }
    }

    /// A plain read of a stream socket (TCP, Unix stream).
    pub(crate) fn stream(fd: RawFd, buf: &'a mut [u8]) -> Recv<'a> {
        Recv {
            stream: true,
            ..Recv::new(fd, buf, 0)
        }
    }
}

impl Op for Recv<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Read
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Recv::new(types::Fd(self.fd), self.buf, self.len)
            .flags(self.flags)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `buf` is valid for `len` bytes for the op's lifetime.
        let n = syscall!(recv(
            self.fd,
            self.buf.cast(),
            self.len as usize,
            self.flags
        ))?;
        Ok(n as u32)
    }

    /// A stream socket hands over everything it holds, up to the buffer's
    /// length, so fewer bytes than asked for means it is empty now. Not
    /// `n == 0`: that is end of stream, which stays readable forever and
    /// brings no further edge.
    fn drained(&self, n: u32) -> bool {
        self.stream && n > 0 && n < self.len
    }
}

/// `send(2)` from a borrowed buffer, always with `MSG_NOSIGNAL`: a closed
/// peer is an `EPIPE` error, never a SIGPIPE.
#[derive(Debug)]
pub(crate) struct Send<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a [u8]>,
    fd: RawFd,
    buf: *const u8,
    len: u32,
    flags: i32,
}

impl<'a> Send<'a> {
    pub(crate) fn new(fd: RawFd, buf: &'a [u8], flags: i32) -> Send<'a> {
        Send {
            _buffers: PhantomData,
            fd,
            buf: buf.as_ptr(),
            len: clamp(buf.len()),
            flags: flags | crate::sys::MSG_NOSIGNAL,
        }
    }
}

impl Op for Send<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Write
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Send::new(types::Fd(self.fd), self.buf, self.len)
            .flags(self.flags)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `buf` is valid for `len` bytes for the op's lifetime.
        let n = syscall!(send(
            self.fd,
            self.buf.cast(),
            self.len as usize,
            self.flags
        ))?;
        Ok(n as u32)
    }
}

/// `read(2)` at the file position (sockets and pipes: `readiness` Read;
/// regular files: Blocking).
#[derive(Debug)]
pub(crate) struct Read<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a mut [u8]>,
    fd: RawFd,
    buf: *mut u8,
    len: u32,
    readiness: Readiness,
}

impl<'a> Read<'a> {
    pub(crate) fn new(fd: RawFd, buf: &'a mut [u8], readiness: Readiness) -> Read<'a> {
        Read {
            _buffers: PhantomData,
            fd,
            buf: buf.as_mut_ptr(),
            len: clamp(buf.len()),
            readiness,
        }
    }
}

impl Op for Read<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        self.readiness
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        // Offset -1: use (and advance) the file position.
        opcode::Read::new(types::Fd(self.fd), self.buf, self.len)
            .offset(u64::MAX)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `buf` is valid for `len` bytes for the op's lifetime.
        let n = syscall!(read(self.fd, self.buf.cast(), self.len as usize))?;
        Ok(n as u32)
    }
}

/// `write(2)` at the file position; see [`Read`] for `readiness`.
#[derive(Debug)]
pub(crate) struct Write<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a [u8]>,
    fd: RawFd,
    buf: *const u8,
    len: u32,
    readiness: Readiness,
}

impl<'a> Write<'a> {
    pub(crate) fn new(fd: RawFd, buf: &'a [u8], readiness: Readiness) -> Write<'a> {
        Write {
            _buffers: PhantomData,
            fd,
            buf: buf.as_ptr(),
            len: clamp(buf.len()),
            readiness,
        }
    }
}

impl Op for Write<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        self.readiness
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Write::new(types::Fd(self.fd), self.buf, self.len)
            .offset(u64::MAX)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `buf` is valid for `len` bytes for the op's lifetime.
        let n = syscall!(write(self.fd, self.buf.cast(), self.len as usize))?;
        Ok(n as u32)
    }
}

/// Most iovecs one vectored op passes (Linux's `UIO_MAXIOV`); extra
/// buffers are left for the caller's next call, as a short read/write.
pub(crate) const MAX_IOVECS: usize = 1024;

/// `readv(2)` into borrowed buffers. `std::io::IoSliceMut` is ABI-compatible
/// with `iovec` on Unix, so the caller's slice is passed as is.
#[derive(Debug)]
pub(crate) struct Readv<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a mut [u8]>,
    fd: RawFd,
    iovecs: *const libc::iovec,
    count: u32,
    readiness: Readiness,
}

impl<'a> Readv<'a> {
    pub(crate) fn new(
        fd: RawFd,
        bufs: &'a mut [io::IoSliceMut<'_>],
        readiness: Readiness,
    ) -> Readv<'a> {
        Readv {
            _buffers: PhantomData,
            fd,
            iovecs: bufs.as_ptr().cast(),
            count: bufs.len().min(MAX_IOVECS) as u32,
            readiness,
        }
    }
}

impl Op for Readv<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        self.readiness
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Readv::new(types::Fd(self.fd), self.iovecs, self.count)
            .offset(u64::MAX)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `iovecs` points to `count` valid iovecs for the op's
        // lifetime, each describing a valid buffer.
        let n = syscall!(readv(self.fd, self.iovecs, self.count as i32))?;
        Ok(n as u32)
    }
}

/// `writev(2)` from borrowed buffers; see [`Readv`]. On sockets loom uses
/// `sendmsg` instead, so a closed peer cannot raise SIGPIPE.
#[derive(Debug)]
pub(crate) struct Writev<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a [u8]>,
    fd: RawFd,
    iovecs: *const libc::iovec,
    count: u32,
    readiness: Readiness,
}

impl<'a> Writev<'a> {
    pub(crate) fn new(fd: RawFd, bufs: &'a [io::IoSlice<'_>], readiness: Readiness) -> Writev<'a> {
        Writev {
            _buffers: PhantomData,
            fd,
            iovecs: bufs.as_ptr().cast(),
            count: bufs.len().min(MAX_IOVECS) as u32,
            readiness,
        }
    }
}

impl Op for Writev<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        self.readiness
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Writev::new(types::Fd(self.fd), self.iovecs, self.count)
            .offset(u64::MAX)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: as for Readv.
        let n = syscall!(writev(self.fd, self.iovecs, self.count as i32))?;
        Ok(n as u32)
    }
}

/// `pread(2)`: read at `offset` without moving the file position.
#[derive(Debug)]
pub(crate) struct ReadAt<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a mut [u8]>,
    fd: RawFd,
    buf: *mut u8,
    len: u32,
    offset: u64,
}

impl<'a> ReadAt<'a> {
    pub(crate) fn new(fd: RawFd, buf: &'a mut [u8], offset: u64) -> ReadAt<'a> {
        ReadAt {
            _buffers: PhantomData,
            fd,
            buf: buf.as_mut_ptr(),
            len: clamp(buf.len()),
            offset,
        }
    }
}

impl Op for ReadAt<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Read::new(types::Fd(self.fd), self.buf, self.len)
            .offset(self.offset)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        let offset = offset_arg(self.offset)?;
        // SAFETY: `buf` is valid for `len` bytes for the op's lifetime.
        let n = syscall!(pread(self.fd, self.buf.cast(), self.len as usize, offset))?;
        Ok(n as u32)
    }
}

/// `pwrite(2)`: write at `offset` without moving the file position.
#[derive(Debug)]
pub(crate) struct WriteAt<'a> {
    /// The caller's buffers, borrowed while the op exists.
    _buffers: PhantomData<&'a [u8]>,
    fd: RawFd,
    buf: *const u8,
    len: u32,
    offset: u64,
}

impl<'a> WriteAt<'a> {
    pub(crate) fn new(fd: RawFd, buf: &'a [u8], offset: u64) -> WriteAt<'a> {
        WriteAt {
            _buffers: PhantomData,
            fd,
            buf: buf.as_ptr(),
            len: clamp(buf.len()),
            offset,
        }
    }
}

impl Op for WriteAt<'_> {
    type Output = usize;

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Write::new(types::Fd(self.fd), self.buf, self.len)
            .offset(self.offset)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        let offset = offset_arg(self.offset)?;
        // SAFETY: `buf` is valid for `len` bytes for the op's lifetime.
        let n = syscall!(pwrite(self.fd, self.buf.cast(), self.len as usize, offset))?;
        Ok(n as u32)
    }
}

fn offset_arg(offset: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))
}
