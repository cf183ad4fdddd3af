//! [`File`]: an open file, read and written through loom's ops.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Seek, SeekFrom};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{Metadata, OpenOptions, metadata, on_pool};
use crate::op::{self, Readiness};
use crate::rt::current::run_op;
use crate::sys::syscall;

/// An open file, as std's `fs::File`. Implements `std::io::Read`, `Write`
/// and `Seek`, for `File` and for `&File`, and has positional
/// [`read_at`](File::read_at) / [`write_at`](File::write_at) (std's Unix
/// `FileExt`) as plain methods.
///
/// Every call suspends only the calling fiber: on io_uring it is a kernel
/// op, on epoll/kqueue a blocking-pool job (see the [module
/// documentation](super)). Must be used from a fiber; it may move between
/// threads and runtimes (`Send + Sync`).
///
/// Dropping a `File` closes it (on io_uring with a close op); errors on
/// close are ignored, as in std — call [`sync_all`](File::sync_all) first
/// to learn about write-back errors.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use loom::fs::File;
///
/// let path = std::env::temp_dir().join(format!("loom-file-doc-{}.bin", std::process::id()));
/// let file_path = path.clone();
/// loom::Runtime::builder().build()?.run(move || -> std::io::Result<()> {
///     let path = &file_path;
///     let mut file = File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
///     file.write_all(b"hello world")?;
///     file.sync_all()?;
///
///     let mut word = [0; 5];
///     file.read_exact_at(&mut word, 6)?; // positional: the cursor stays at 11
///     assert_eq!(&word, b"world");
///
///     file.seek(SeekFrom::Start(0))?;
///     let mut all = String::new();
///     file.read_to_string(&mut all)?;
///     assert_eq!(all, "hello world");
///     assert_eq!(file.metadata()?.len(), 11);
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct File {
    fd: ManuallyDrop<OwnedFd>,
}

impl File {
    pub(super) fn from_owned(fd: OwnedFd) -> File {
        File {
            fd: ManuallyDrop::new(fd),
        }
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Opens `path` for reading.
    ///
    /// # Errors
    /// `NotFound`, `PermissionDenied`...; `ECANCELED` if the fiber is
    /// cancelled. See [`OpenOptions::open`].
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens `path` for writing, creating it if needed and truncating it
    /// otherwise.
    ///
    /// # Errors
    /// As [`OpenOptions::open`].
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Creates `path` and opens it for reading and writing; fails with
    /// `AlreadyExists` if it exists.
    ///
    /// # Errors
    /// As [`OpenOptions::open`].
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// A blank [`OpenOptions`], as `OpenOptions::new()`.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Reads into `buf` at `offset`, without using or moving the file
    /// position; returns the bytes read (0 at or past the end of file).
    ///
    /// # Errors
    /// `InvalidInput` for an offset beyond `i64::MAX`; the kernel's errors;
    /// `ECANCELED` if the fiber is cancelled.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        check_offset(offset)?;
        run_op(
            "File::read_at",
            op::ReadAt::new(self.fd(), buf, offset),
            None,
            None,
        )
    }

    /// Writes from `buf` at `offset`, without using or moving the file
    /// position; returns the bytes written. (On Linux a file opened for
    /// appending writes at its end regardless, as `pwrite(2)` does.)
    ///
    /// # Errors
    /// As [`read_at`](File::read_at).
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        check_offset(offset)?;
        run_op(
            "File::write_at",
            op::WriteAt::new(self.fd(), buf, offset),
            None,
            None,
        )
    }

    /// Fills `buf` from `offset` on, with as many reads as it takes.
    ///
    /// # Errors
    /// `UnexpectedEof` if the file ends first (`buf`'s contents are then
    /// unspecified); as [`read_at`](File::read_at) otherwise. `ECANCELED`
    /// (a cancelled fiber) is returned, not retried.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if is_signal(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` from `offset` on, with as many writes as it
    /// takes.
    ///
    /// # Errors
    /// `WriteZero` if a write makes no progress; as
    /// [`write_at`](File::write_at) otherwise. `ECANCELED` (a cancelled
    /// fiber) is returned, not retried; part of `buf` may have been written.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(write_zero()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if is_signal(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Flushes data and metadata to the device (`fsync(2)`).
    ///
    /// # Errors
    /// Write-back errors (`EIO`, `ENOSPC`...); `ECANCELED` if the fiber
    /// is cancelled.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn sync_all(&self) -> io::Result<()> {
        run_op(
            "File::sync_all",
            op::Fsync::new(self.fd(), false),
            None,
            None,
        )
    }

    /// Flushes data, and only the metadata needed to read it back, to the
    /// device (`fdatasync(2)`; `fsync` where there is none).
    ///
    /// # Errors
    /// As [`sync_all`](File::sync_all).
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn sync_data(&self) -> io::Result<()> {
        run_op(
            "File::sync_data",
            op::Fsync::new(self.fd(), true),
            None,
            None,
        )
    }

    /// Truncates or extends (with zeroes) the file to `size` bytes
    /// (`ftruncate(2)`: an io_uring op from Linux 6.9, a blocking-pool job
    /// on older kernels and on the poll backends). The file position is not
    /// changed.
    ///
    /// # Errors
    /// `InvalidInput` for a size beyond `i64::MAX` or a file not open for
    /// writing; `ECANCELED` if the fiber is cancelled.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        let size = libc::off_t::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file size too large"))?;
        run_op(
            "File::set_len",
            op::Ftruncate::new(self.fd(), size),
            None,
            None,
        )
    }

    /// Changes the permission bits (`fchmod(2)`, on the blocking pool).
    ///
    /// # Errors
    /// `PermissionDenied`...; `ECANCELED` if the fiber is cancelled.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn set_permissions(&self, perm: std::fs::Permissions) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = libc::mode_t::try_from(perm.mode())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mode out of range"))?;
        let fd = self.fd();
        on_pool("File::set_permissions", || {
            loop {
                match syscall!(fchmod(fd, mode)) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    result => return result.map(drop),
                }
            }
        })
    }

    /// The file's metadata: `statx(2)` on Linux (an io_uring op, or on the
    /// blocking pool), `fstat(2)` on the blocking pool elsewhere.
    ///
    /// # Errors
    /// The kernel's; `ECANCELED` if the fiber is cancelled.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn metadata(&self) -> io::Result<Metadata> {
        metadata::of_fd(self.fd(), "File::metadata")
    }

    /// A second handle to the same open file (`dup`), sharing its position
    /// and flags.
    ///
    /// # Errors
    /// `EMFILE` when out of file descriptors.
    pub fn try_clone(&self) -> io::Result<File> {
        self.fd.try_clone().map(File::from_owned)
    }

    /// Wraps a std file. Works outside a runtime too.
    pub fn from_std(file: std::fs::File) -> File {
        File::from_owned(OwnedFd::from(file))
    }

    /// Unwraps into a std file, without closing it.
    pub fn into_std(self) -> std::fs::File {
        std::fs::File::from(self.into_owned())
    }

    fn into_owned(self) -> OwnedFd {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the fd is taken exactly once.
        unsafe { ManuallyDrop::take(&mut this.fd) }
    }

    #[track_caller]
    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        let read = op::Read::new(self.fd(), buf, Readiness::Blocking);
        run_op("File::read", read, None, None)
    }

    #[track_caller]
    fn read_vectored_inner(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let readv = op::Readv::new(self.fd(), bufs, Readiness::Blocking);
        run_op("File::read_vectored", readv, None, None)
    }

    #[track_caller]
    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        let write = op::Write::new(self.fd(), buf, Readiness::Blocking);
        run_op("File::write", write, None, None)
    }

    #[track_caller]
    fn write_vectored_inner(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let writev = op::Writev::new(self.fd(), bufs, Readiness::Blocking);
        run_op("File::write_vectored", writev, None, None)
    }

    /// Appends the rest of the file to `out`, expecting about `hint` more
    /// bytes; returns how many were appended. On an error, `out` keeps
    /// what was read before it.
    pub(super) fn read_to_end_hinted(&self, out: &mut Vec<u8>, hint: usize) -> io::Result<usize> {
        const MIN_CHUNK: usize = 32 * 1024;
        const MAX_CHUNK: usize = 4 * 1024 * 1024;
        let start = out.len();
        // One more byte than the hint, so that a file of exactly `hint`
        // bytes is read in one call and the second sees end-of-file.
        let mut chunk = if hint > 0 {
            hint.saturating_add(1)
        } else {
            MIN_CHUNK
        };
        loop {
            let filled = out.len();
            out.resize(filled.saturating_add(chunk), 0);
            let result = self.read_inner(&mut out[filled..]);
            match result {
                Ok(0) => {
                    out.truncate(filled);
                    return Ok(filled - start);
                }
                Ok(n) => {
                    out.truncate(filled + n);
                    if n == chunk {
                        chunk = (chunk * 2).clamp(MIN_CHUNK, MAX_CHUNK);
                    } else {
                        chunk = chunk.max(MIN_CHUNK);
                    }
                }
                Err(e) => {
                    out.truncate(filled);
                    if !is_signal(&e) {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn seek_inner(&self, pos: SeekFrom) -> io::Result<u64> {
        let (offset, whence) = match pos {
            SeekFrom::Start(n) => (
                libc::off_t::try_from(n).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek offset too large")
                })?,
                libc::SEEK_SET,
            ),
            SeekFrom::End(n) => (n as libc::off_t, libc::SEEK_END),
            SeekFrom::Current(n) => (n as libc::off_t, libc::SEEK_CUR),
        };
        // lseek only updates the open file's position: it never blocks.
        let at = syscall!(lseek(self.fd(), offset, whence))?;
        Ok(at as u64)
    }
}

/// A real `EINTR` from a signal, worth retrying — unlike the `ECANCELED`
/// of a cancelled fiber, which must end the loop.
fn is_signal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINTR)
}

fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer")
}

/// Offsets above `i64::MAX` are refused up front: io_uring would read
/// `u64::MAX` as "the current position", and `pread` rejects them anyway.
fn check_offset(offset: u64) -> io::Result<()> {
    if i64::try_from(offset).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file offset too large",
        ));
    }
    Ok(())
}

macro_rules! io_impls {
    ($($t:ty),*) => {$(
        impl io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.read_inner(buf)
            }

            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                self.read_vectored_inner(bufs)
            }
        }

        impl io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.write_inner(buf)
            }

            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.write_vectored_inner(bufs)
            }

            /// Files have no user-space buffer: a no-op, as in std. Use
            /// `sync_all` to reach the device.
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Seek for $t {
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                self.seek_inner(pos)
            }
        }
    )*};
}
io_impls!(File, &File);

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: drop runs once; the fd is not used afterwards.
        let fd = unsafe { ManuallyDrop::take(&mut self.fd) };
        crate::net::socket::close(fd);
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = self.fd();
        let mut d = f.debug_struct("File");
        d.field("fd", &fd);
        #[cfg(target_os = "linux")]
        if let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            d.field("path", &path);
        }
        if let Ok(flags) = syscall!(fcntl(fd, libc::F_GETFL)) {
            let access = flags & libc::O_ACCMODE;
            d.field(
                "read",
                &(access == libc::O_RDONLY || access == libc::O_RDWR),
            );
            d.field(
                "write",
                &(access == libc::O_WRONLY || access == libc::O_RDWR),
            );
        }
        d.finish()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        self.into_owned().into_raw_fd()
    }
}

impl FromRawFd for File {
    /// # Safety
    /// `fd` is an open file descriptor that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> File {
        // SAFETY: the caller hands over sole ownership of an open fd.
        File::from_owned(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from_owned(fd)
    }
}

impl From<File> for OwnedFd {
    fn from(file: File) -> OwnedFd {
        file.into_owned()
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}
