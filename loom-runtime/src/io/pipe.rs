//! [`pipe`]: an anonymous pipe whose two ends park only the calling fiber
//! — a channel of bytes between fibers, and the kernel-side buffer that
//! [`splice`](super::splice) moves bytes through on Linux.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::fd::FiberFd;

const PIPE: &str = "loom::io::pipe";

/// Creates an anonymous pipe (close-on-exec), adopted by the current
/// loop: reading an empty pipe or writing a full one parks only the
/// calling fiber. Shaped like [`std::io::pipe`].
///
/// The pipe holds 64 KiB on Linux by default (`/proc/sys/fs/pipe-max-size`
/// caps what `fcntl(F_SETPIPE_SZ)` on [`AsRawFd::as_raw_fd`] may raise it
/// to). Reading returns 0 (end of file) once every writer is closed;
/// writing fails with `BrokenPipe` once every reader is — never SIGPIPE,
/// which Rust programs ignore.
///
/// Like loom's sockets, both ends belong to the loop that created them
/// (they are not `Send`).
///
/// # Errors
/// `EMFILE`/`ENFILE` when the process or system is out of descriptors.
///
/// # Panics
/// Outside a loom runtime.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let (mut reader, mut writer) = loom::io::pipe()?;
///     let producer = loom::spawn(move || writer.write_all(b"through the pipe"));
///     let mut got = String::new();
///     reader.read_to_string(&mut got)?; // end of file once `writer` is dropped
///     producer.join().unwrap()?;
///     assert_eq!(got, "through the pipe");
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let (reader, writer) = std::io::pipe()?;
    let reader = FiberFd::transfer(OwnedFd::from(reader), PIPE)?;
    let writer = FiberFd::transfer(OwnedFd::from(writer), PIPE)?;
    Ok((PipeReader { fd: reader }, PipeWriter { fd: writer }))
}

/// The reading end of a [`pipe`]. Implements `std::io::Read`, for
/// `PipeReader` and for `&PipeReader`.
pub struct PipeReader {
    fd: FiberFd,
}

/// The writing end of a [`pipe`]. Implements `std::io::Write`, for
/// `PipeWriter` and for `&PipeWriter`; each write is one `write(2)`, so
/// writes of at most `PIPE_BUF` (4 KiB) bytes are never interleaved with
/// another writer's.
pub struct PipeWriter {
    fd: FiberFd,
}

impl PipeReader {
    #[cfg(target_os = "linux")]
    pub(crate) fn fiber_fd(&self) -> &FiberFd {
        &self.fd
    }
}

impl PipeWriter {
    #[cfg(target_os = "linux")]
    pub(crate) fn fiber_fd(&self) -> &FiberFd {
        &self.fd
    }
}

impl Read for PipeReader {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Read for &PipeReader {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.read("loom::io::PipeReader::read", buf)
    }
}

impl Write for PipeWriter {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &PipeWriter {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.fd.write("loom::io::PipeWriter::write", buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! pipe_end_impls {
    ($($t:ident),*) => {$(
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.fd()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).field("fd", &self.fd.fd()).finish()
            }
        }
    )*};
}
pipe_end_impls!(PipeReader, PipeWriter);
