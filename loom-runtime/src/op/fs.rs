//! File-system ops: openat, fsync and statx. Kernel-async on io_uring; on
//! the poll backends (regular files are never "ready") they run on the
//! blocking pool.

use std::ffi::CStr;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

use super::{Op, Readiness};
use crate::sys::syscall;

/// `openat(2)` relative to the current directory, close-on-exec.
#[derive(Debug)]
pub(crate) struct OpenAt<'a> {
    path: &'a CStr,
    flags: i32,
    mode: libc::mode_t,
}

impl<'a> OpenAt<'a> {
    pub(crate) fn new(path: &'a CStr, flags: i32, mode: libc::mode_t) -> OpenAt<'a> {
        OpenAt {
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
        }
    }
}

impl Op for OpenAt<'_> {
    type Output = OwnedFd;

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `path` is a valid C string for the op's lifetime.
        let fd = syscall!(openat(
            libc::AT_FDCWD,
            self.path.as_ptr(),
            self.flags,
            libc::c_uint::from(self.mode)
        ))?;
        Ok(fd as u32)
    }
}

/// `close(2)`. Closing does not cancel ops on the fd — loom's socket and
/// file types never close while an op borrows them — and since ops are
/// identified by their completion's address, not by fd, a reused fd number
/// can never receive an old op's result.
#[derive(Debug)]
pub(crate) struct Close {
    fd: RawFd,
}

impl Close {
    /// Takes over `fd`: after the op, whatever its result, the fd is gone.
    pub(crate) fn new(fd: OwnedFd) -> Close {
        Close {
            fd: std::os::fd::IntoRawFd::into_raw_fd(fd),
        }
    }
}

impl Op for Close {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Immediate
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Close::new(types::Fd(self.fd)).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // Not retried on EINTR: on Linux the fd is released regardless.
        syscall!(close(self.fd)).map(|_| 0)
    }
}

/// `fsync(2)`, or `fdatasync(2)` with `data_only`.
#[derive(Debug)]
pub(crate) struct Fsync {
    fd: RawFd,
    #[cfg_attr(
        target_vendor = "apple",
        allow(dead_code, reason = "F_FULLFSYNC either way")
    )]
    data_only: bool,
}

impl Fsync {
    pub(crate) fn new(fd: RawFd, data_only: bool) -> Fsync {
        Fsync { fd, data_only }
    }
}

impl Op for Fsync {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        let flags = if self.data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        opcode::Fsync::new(types::Fd(self.fd)).flags(flags).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // On Apple platforms fsync does not reach the device; std uses
        // F_FULLFSYNC for both sync_all and sync_data, and so does loom.
        #[cfg(target_vendor = "apple")]
        return syscall!(fcntl(self.fd, libc::F_FULLFSYNC)).map(|_| 0);
        #[cfg(not(target_vendor = "apple"))]
        if self.data_only {
            syscall!(fdatasync(self.fd)).map(|_| 0)
        } else {
            syscall!(fsync(self.fd)).map(|_| 0)
        }
    }
}

/// `statx(2)` of an open fd (`AT_EMPTY_PATH`), filling `buf`.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct Statx<'a> {
    fd: RawFd,
    buf: &'a mut libc::statx,
}

#[cfg(target_os = "linux")]
impl<'a> Statx<'a> {
    pub(crate) fn new(fd: RawFd, buf: &'a mut libc::statx) -> Statx<'a> {
        Statx { fd, buf }
    }
}

#[cfg(target_os = "linux")]
const STATX_MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

#[cfg(target_os = "linux")]
impl Op for Statx<'_> {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Statx::new(
            types::Fd(self.fd),
            c"".as_ptr(),
            std::ptr::from_mut(self.buf).cast(),
        )
        .flags(libc::AT_EMPTY_PATH)
        .mask(STATX_MASK)
        .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: the path is a valid (empty) C string, `buf` is valid for
        // writes of a statx struct.
        syscall!(statx(
            self.fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_MASK,
            std::ptr::from_mut(self.buf)
        ))
        .map(|_| 0)
    }
}
