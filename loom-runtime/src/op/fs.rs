//! File-system ops: openat, close, fsync, ftruncate, statx, and the calls
//! that change names in the tree (unlinkat, renameat, mkdirat, symlinkat,
//! linkat). Kernel-async on io_uring; on the poll backends (regular files
//! are never "ready", and path lookups may wait on the disk) they run on
//! the blocking pool.
//!
//! Every path is resolved from the current directory (`AT_FDCWD`), as
//! std's calls do, and is borrowed for the op's lifetime: the kernel may
//! read it after submission (invariant 1, docs/ARCHITECTURE.md). Each
//! `attempt` makes exactly the system call the io_uring opcode stands for,
//! so the two ways of running an op report the same errors; an op whose
//! opcode this kernel lacks runs its `attempt` on the blocking pool.

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

/// `statx(2)`, filling `buf`: of an open fd ([`Statx::new`]), or of a path
/// relative to a directory fd ([`Statx::at`]).
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct Statx<'a> {
    dirfd: RawFd,
    path: &'a CStr,
    flags: i32,
    buf: &'a mut libc::statx,
}

#[cfg(target_os = "linux")]
impl<'a> Statx<'a> {
    /// The file `fd` is open on (`AT_EMPTY_PATH`).
    pub(crate) fn new(fd: RawFd, buf: &'a mut libc::statx) -> Statx<'a> {
        Statx::at(fd, c"", libc::AT_EMPTY_PATH, buf)
    }

    /// `path` relative to `dirfd` (`AT_FDCWD` for the current directory),
    /// with `flags` such as `AT_SYMLINK_NOFOLLOW`.
    pub(crate) fn at(
        dirfd: RawFd,
        path: &'a CStr,
        flags: i32,
        buf: &'a mut libc::statx,
    ) -> Statx<'a> {
        Statx {
            dirfd,
            path,
            flags,
            buf,
        }
    }
}

/// What every statx asks for, as std does; the kernel says in `stx_mask`
/// what it gave.
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
            types::Fd(self.dirfd),
            self.path.as_ptr(),
            std::ptr::from_mut(self.buf).cast(),
        )
        .flags(self.flags)
        .mask(STATX_MASK)
        .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `path` is a valid C string and `buf` is valid for writes
        // of a statx struct, both borrowed for the op's lifetime.
        syscall!(statx(
            self.dirfd,
            self.path.as_ptr(),
            self.flags,
            STATX_MASK,
            std::ptr::from_mut(self.buf)
        ))
        .map(|_| 0)
    }
}

/// `ftruncate(2)`: IORING_OP_FTRUNCATE, Linux 6.9.
#[derive(Debug)]
pub(crate) struct Ftruncate {
    fd: RawFd,
    len: libc::off_t,
}

impl Ftruncate {
    /// `len` must not be negative (callers convert from `u64` and refuse
    /// what does not fit, as std does).
    pub(crate) fn new(fd: RawFd, len: libc::off_t) -> Ftruncate {
        debug_assert!(len >= 0);
        Ftruncate { fd, len }
    }
}

impl Op for Ftruncate {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::Ftruncate::new(types::Fd(self.fd), self.len as u64).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // Retried on EINTR, as std's `set_len` does: truncation either
        // happened or not, so repeating it is harmless.
        loop {
            match syscall!(ftruncate(self.fd, self.len)) {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                result => return result.map(|_| 0),
            }
        }
    }
}

/// `unlinkat(2)`: removes a name ([`UnlinkAt::file`], as `unlink(2)`) or
/// an empty directory ([`UnlinkAt::dir`], `AT_REMOVEDIR`, as `rmdir(2)`).
/// IORING_OP_UNLINKAT, Linux 5.11.
#[derive(Debug)]
pub(crate) struct UnlinkAt<'a> {
    path: &'a CStr,
    flags: i32,
}

impl<'a> UnlinkAt<'a> {
    pub(crate) fn file(path: &'a CStr) -> UnlinkAt<'a> {
        UnlinkAt { path, flags: 0 }
    }

    pub(crate) fn dir(path: &'a CStr) -> UnlinkAt<'a> {
        UnlinkAt {
            path,
            flags: libc::AT_REMOVEDIR,
        }
    }
}

impl Op for UnlinkAt<'_> {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `path` is a valid C string for the op's lifetime.
        syscall!(unlinkat(libc::AT_FDCWD, self.path.as_ptr(), self.flags)).map(|_| 0)
    }
}

/// `renameat(2)` (`renameat2` with no flags on io_uring: the same call).
/// IORING_OP_RENAMEAT, Linux 5.11.
#[derive(Debug)]
pub(crate) struct RenameAt<'a> {
    from: &'a CStr,
    to: &'a CStr,
}

impl<'a> RenameAt<'a> {
    pub(crate) fn new(from: &'a CStr, to: &'a CStr) -> RenameAt<'a> {
        RenameAt { from, to }
    }
}

impl Op for RenameAt<'_> {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::RenameAt::new(cwd, self.from.as_ptr(), cwd, self.to.as_ptr()).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: both paths are valid C strings for the op's lifetime.
        syscall!(renameat(
            libc::AT_FDCWD,
            self.from.as_ptr(),
            libc::AT_FDCWD,
            self.to.as_ptr()
        ))
        .map(|_| 0)
    }
}

/// `mkdirat(2)`. IORING_OP_MKDIRAT, Linux 5.15.
#[derive(Debug)]
pub(crate) struct MkDirAt<'a> {
    path: &'a CStr,
    mode: libc::mode_t,
}

impl<'a> MkDirAt<'a> {
    pub(crate) fn new(path: &'a CStr, mode: libc::mode_t) -> MkDirAt<'a> {
        MkDirAt { path, mode }
    }
}

impl Op for MkDirAt<'_> {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .mode(self.mode)
            .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: `path` is a valid C string for the op's lifetime.
        syscall!(mkdirat(libc::AT_FDCWD, self.path.as_ptr(), self.mode)).map(|_| 0)
    }
}

/// `symlinkat(2)`: a symbolic link at `link` whose contents are `target`
/// (not resolved, and it need not exist). IORING_OP_SYMLINKAT, Linux 5.15.
#[derive(Debug)]
pub(crate) struct SymlinkAt<'a> {
    target: &'a CStr,
    link: &'a CStr,
}

impl<'a> SymlinkAt<'a> {
    pub(crate) fn new(target: &'a CStr, link: &'a CStr) -> SymlinkAt<'a> {
        SymlinkAt { target, link }
    }
}

impl Op for SymlinkAt<'_> {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        opcode::SymlinkAt::new(
            types::Fd(libc::AT_FDCWD),
            self.target.as_ptr(),
            self.link.as_ptr(),
        )
        .build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: both paths are valid C strings for the op's lifetime.
        syscall!(symlinkat(
            self.target.as_ptr(),
            libc::AT_FDCWD,
            self.link.as_ptr()
        ))
        .map(|_| 0)
    }
}

/// `linkat(2)` with no flags: a new name `to` for the file `from` names,
/// not following `from` if it is a symbolic link — std's `hard_link`.
/// IORING_OP_LINKAT, Linux 5.15.
#[derive(Debug)]
pub(crate) struct LinkAt<'a> {
    from: &'a CStr,
    to: &'a CStr,
}

impl<'a> LinkAt<'a> {
    pub(crate) fn new(from: &'a CStr, to: &'a CStr) -> LinkAt<'a> {
        LinkAt { from, to }
    }
}

impl Op for LinkAt<'_> {
    type Output = ();

    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }

    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        use io_uring::{opcode, types};
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::LinkAt::new(cwd, self.from.as_ptr(), cwd, self.to.as_ptr()).build()
    }

    fn attempt(&mut self) -> io::Result<u32> {
        // SAFETY: both paths are valid C strings for the op's lifetime.
        syscall!(linkat(
            libc::AT_FDCWD,
            self.from.as_ptr(),
            libc::AT_FDCWD,
            self.to.as_ptr(),
            0
        ))
        .map(|_| 0)
    }
}
