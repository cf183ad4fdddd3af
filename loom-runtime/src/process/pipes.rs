//! The parent's ends of a child's stdio pipes: std's `ChildStdin`,
//! `ChildStdout` and `ChildStderr` taken apart into their fds and adopted
//! by the loop (`FiberFd::transfer`), so reading and writing park only the
//! calling fiber.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Stdio;

use crate::io::fd::FiberFd;

/// Adopts the parent's end of one of a new child's pipes.
fn adopt(fd: impl Into<OwnedFd>, what: &str) -> io::Result<FiberFd> {
    FiberFd::transfer(fd.into(), what)
}

/// The child's standard input, as [`Child::stdin`](super::Child::stdin)
/// holds it when the command asked for [`Stdio::piped`](super::Stdio::piped).
///
/// Writing parks only the calling fiber while the pipe is full. Dropping it
/// closes the pipe, which the child reads as end of input. A child that has
/// closed its end makes writes fail with `BrokenPipe`.
///
/// Like loom's sockets it belongs to the loop that spawned the child
/// (`!Send`).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use loom::process::{Command, Stdio};
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let mut child = Command::new("cat")
///         .stdin(Stdio::piped())
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let mut stdin = child.stdin.take().unwrap();
///     stdin.write_all(b"through the pipe")?;
///     drop(stdin); // end of input: cat exits
///     let mut echoed = String::new();
///     child.stdout.take().unwrap().read_to_string(&mut echoed)?;
///     assert_eq!(echoed, "through the pipe");
///     assert!(child.wait()?.success());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChildStdin {
    fd: FiberFd,
}

/// The child's standard output, as [`Child::stdout`](super::Child::stdout)
/// holds it when the command asked for [`Stdio::piped`](super::Stdio::piped).
///
/// Reading parks only the calling fiber until the child writes; it returns
/// 0 (end of file) once the child and every process it passed the pipe to
/// have closed it. Belongs to the loop that spawned the child (`!Send`).
/// See [`ChildStdin`] for an example.
///
/// Like each pipe type it converts into a [`Stdio`] (with `TryFrom`), to
/// feed another command:
///
/// ```
/// use loom::process::{Command, Stdio};
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let mut echo = Command::new("echo").arg("shout").stdout(Stdio::piped()).spawn()?;
///     let piped = Stdio::try_from(echo.stdout.take().unwrap())?;
///     let upper = Command::new("tr").args(["a-z", "A-Z"]).stdin(piped).output()?;
///     assert_eq!(upper.stdout, b"SHOUT\n");
///     assert!(echo.wait()?.success());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChildStdout {
    fd: FiberFd,
}

/// The child's standard error, as [`Child::stderr`](super::Child::stderr)
/// holds it when the command asked for [`Stdio::piped`](super::Stdio::piped).
///
/// Reading parks only the calling fiber, as for [`ChildStdout`].
pub struct ChildStderr {
    fd: FiberFd,
}

impl ChildStdin {
    pub(super) fn adopt(std: std::process::ChildStdin) -> io::Result<ChildStdin> {
        adopt(std, "loom::process::ChildStdin").map(|fd| ChildStdin { fd })
    }
}

impl ChildStdout {
    pub(super) fn adopt(std: std::process::ChildStdout) -> io::Result<ChildStdout> {
        adopt(std, "loom::process::ChildStdout").map(|fd| ChildStdout { fd })
    }
}

impl ChildStderr {
    pub(super) fn adopt(std: std::process::ChildStderr) -> io::Result<ChildStderr> {
        adopt(std, "loom::process::ChildStderr").map(|fd| ChildStderr { fd })
    }
}

impl Write for ChildStdin {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes through a shared reference, as std's `&ChildStdin` does: each
/// write is one `write(2)`, so fibers sharing the pipe may interleave
/// between writes.
impl Write for &ChildStdin {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.fd.write("loom::process::ChildStdin::write", buf)
    }

    /// Nothing is buffered in the parent.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `Read` for a pipe type and its shared reference, the way std has it.
macro_rules! read_end {
    ($t:ident, $what:literal) => {
        impl Read for $t {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }
        }

        /// Reads through a shared reference: fibers sharing the pipe each
        /// get whatever bytes their own read takes.
        impl Read for &$t {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.fd.read($what, buf)
            }
        }
    };
}

read_end!(ChildStdout, "loom::process::ChildStdout::read");
read_end!(ChildStderr, "loom::process::ChildStderr::read");

/// `AsRawFd`, `Debug` and the conversions back to std for the three pipe
/// types.
macro_rules! pipe_common {
    ($($t:ident),*) => {$(
        /// The pipe end, unregistered from the loop and in blocking mode
        /// again, as std and other processes expect it.
        ///
        /// # Errors
        ///
        /// `fcntl`'s, if the fd's mode cannot be changed.
        impl TryFrom<$t> for OwnedFd {
            type Error = io::Error;

            fn try_from(pipe: $t) -> io::Result<OwnedFd> {
                pipe.fd.into_fd()
            }
        }

        /// The pipe end as another child's stdio, to chain commands (std
        /// has `From` here; loom must first put the fd back in blocking
        /// mode, which can fail).
        ///
        /// # Errors
        ///
        /// As for the conversion into `OwnedFd`.
        impl TryFrom<$t> for Stdio {
            type Error = io::Error;

            fn try_from(pipe: $t) -> io::Result<Stdio> {
                OwnedFd::try_from(pipe).map(Stdio::from)
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.fd()
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).field("fd", &self.fd.fd()).finish()
            }
        }
    )*};
}

pipe_common!(ChildStdin, ChildStdout, ChildStderr);
