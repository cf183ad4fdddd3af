//! [`splice`]: bytes moved between a socket and a pipe inside the kernel,
//! parking only the calling fiber. Linux only.
//!
//! How it waits, per backend:
//!
//! - **io_uring**: the kernel runs every `IORING_OP_SPLICE` on one of the
//!   ring's worker threads (io-wq), on the fds in blocking mode (as loom
//!   keeps them there), and the worker blocks until bytes can move. So a
//!   socket end is first waited for in the ring — a poll op for readable
//!   `from` or writable `to`, which holds no thread — and only then is the
//!   splice submitted: 200 idle spliced connections would otherwise hold
//!   400 kernel threads. The splice can still block its worker briefly (a
//!   full pipe, a send buffer that fills midway). Each step is an op like
//!   any other: cancellation and deadlines cancel it (a worker blocked in
//!   a splice is interrupted), and the fiber leaves only once the op's
//!   completion arrived (invariant 1).
//! - **epoll**: `splice(2)` with `SPLICE_F_NONBLOCK` on the non-blocking
//!   fds. `EAGAIN` does not say which end was not ready, so a zero-timeout
//!   `poll(2)` of both finds out, and the fiber parks on that end's
//!   readiness (readable for `from`, writable for `to`) before trying
//!   again.

use std::io;
use std::os::fd::{AsFd, RawFd};

use super::pipe::{PipeReader, PipeWriter};
use crate::driver::poll::SourceKey;
use crate::net::{TcpStream, UnixStream};
use crate::op::{self, Deadline};
use crate::rt::current::{run_op, with_current};
use crate::sys::syscall;

const SPLICE: &str = "loom::io::splice";

/// An fd [`splice`] can move bytes from or to: loom's stream sockets
/// ([`TcpStream`], [`UnixStream`]) and the ends of a [`pipe`](super::pipe)
/// ([`PipeReader`], [`PipeWriter`]). Sealed: splice needs to know how the
/// loop waits on the fd, which only loom's own types tell it.
pub trait SpliceFd: AsFd + sealed::Sealed {}

mod sealed {
    use super::{Deadline, RawFd, SourceKey};

    /// What a splice needs of one end.
    #[derive(Clone, Copy, Debug)]
    pub struct End {
        pub(crate) fd: RawFd,
        /// The poll registration (`None` on io_uring).
        pub(crate) source: Option<SourceKey>,
        /// The socket's read timeout for `from`, write timeout for `to`.
        pub(crate) deadline: Option<Deadline>,
        pub(crate) kind: Kind,
    }

    /// What an end is: a socket's readiness is waited for in the ring
    /// before a splice on io_uring; pipe ends decide what the kernel
    /// accepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kind {
        Socket,
        PipeReader,
        PipeWriter,
    }

    /// Which side of the splice an end is on.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Side {
        From,
        To,
    }

    pub trait Sealed {
        fn end(&self, side: Side) -> End;
    }
}

use sealed::{End, Kind, Side};

macro_rules! socket_ends {
    ($($t:ty),*) => {$(
        impl SpliceFd for $t {}

        impl sealed::Sealed for $t {
            fn end(&self, side: Side) -> End {
                let socket = self.socket();
                End {
                    fd: socket.fd(),
                    source: socket.source(),
                    deadline: match side {
                        Side::From => socket.read_deadline(),
                        Side::To => socket.write_deadline(),
                    },
                    kind: Kind::Socket,
                }
            }
        }
    )*};
}
socket_ends!(TcpStream, UnixStream);

macro_rules! pipe_ends {
    ($($t:ident),*) => {$(
        impl SpliceFd for $t {}

        impl sealed::Sealed for $t {
            fn end(&self, _: Side) -> End {
                let fd = self.fiber_fd();
                End {
                    fd: fd.fd(),
                    source: fd.source(),
                    deadline: None,
                    kind: Kind::$t,
                }
            }
        }
    )*};
}
pipe_ends!(PipeReader, PipeWriter);

/// Moves up to `len` bytes from `from` to `to` inside the kernel
/// (`splice(2)`), parking only the calling fiber until some can move.
/// One of the two must be a pipe end: socket → [`PipeWriter`], then
/// [`PipeReader`] → socket moves bytes between two sockets without
/// copying them through user memory. **Linux only.**
///
/// Returns how many bytes moved, which may be fewer than `len` (what the
/// socket had, what fit in the pipe); 0 means `from` is at end of file (a
/// socket whose peer shut down its writing side, a pipe with no writer
/// left), or that `len` was 0. A socket's read timeout (for `from`) and
/// write timeout (for `to`) bound the call as they bound `read` and
/// `write`, failing with `WouldBlock`; so does a call-tree deadline
/// ([`crate::time::with_deadline`], failing with `TimedOut`).
///
/// On io_uring a splice runs on one of the kernel's io_uring worker
/// threads; loom waits for a socket end's readiness in the ring first, so
/// a splice waiting on an idle connection holds no thread (see the module
/// source, `io/splice.rs`, for how each backend waits).
///
/// # Errors
/// - `BrokenPipe` (`EPIPE`) when `to` is a socket whose peer has closed
///   or a pipe with no reader left; `ConnectionReset` when `from` or `to`
///   is a reset connection. Unlike loom's `write`, which passes
///   `MSG_NOSIGNAL`, splice cannot ask the kernel not to raise SIGPIPE for
///   a closed `to`. Rust programs ignore it; on a loop thread that blocks
///   it (every loop but the caller's), a poll-backend splice leaves it
///   pending on that thread, where nothing reads it (signalfds see only
///   their own thread's and the process's signals); on io_uring it goes to
///   the kernel's worker thread, which discards it.
/// - `InvalidInput` (`EINVAL`) when neither end is a pipe, or `from` and
///   `to` are the same pipe; `EBADF` when `from` cannot be read (a
///   [`PipeWriter`]) or `to` cannot be written (a [`PipeReader`]).
/// - The cancellation error ([`crate::fiber::is_cancelled`]) if the
///   fiber is cancelled while it waits; the deadlines above.
///
/// # Panics
/// Outside a fiber.
///
/// # Examples
///
/// Two sockets joined through a pipe — the core of a splicing proxy:
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::Shutdown;
/// use loom::net::UnixStream;
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let (mut client, proxy_in) = UnixStream::pair()?;
///     let (proxy_out, mut server) = UnixStream::pair()?;
///     let (pipe_out, pipe_in) = loom::io::pipe()?;
///     client.write_all(b"spliced, not copied")?;
///     client.shutdown(Shutdown::Write)?;
///     loop {
///         let n = loom::io::splice(&proxy_in, &pipe_in, 64 * 1024)?;
///         if n == 0 {
///             break; // the client is done
///         }
///         let mut left = n;
///         while left > 0 {
///             left -= loom::io::splice(&pipe_out, &proxy_out, left)?;
///         }
///     }
///     drop(proxy_out);
///     let mut got = String::new();
///     server.read_to_string(&mut got)?;
///     assert_eq!(got, "spliced, not copied");
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn splice<F, T>(from: &F, to: &T, len: usize) -> io::Result<usize>
where
    F: SpliceFd + ?Sized,
    T: SpliceFd + ?Sized,
{
    let (from, to) = (from.end(Side::From), to.end(Side::To));
    if len == 0 {
        return Ok(0);
    }
    check_ends(from.kind, to.kind)?;
    let deadline = earlier(from.deadline, to.deadline);
    if with_current(SPLICE, |lp| lp.driver.is_completion_based()) {
        splice_in_ring(from, to, len, deadline)
    } else {
        splice_on_readiness(from, to, len, deadline)
    }
}

/// What the kernel would refuse, refused before any wait (on io_uring a
/// wait for a socket end comes first, and would make a misuse hang until
/// the socket is ready): no pipe end (`EINVAL`), reading from a write end
/// or writing to a read end (`EBADF`). The same errors as `splice(2)`.
fn check_ends(from: Kind, to: Kind) -> io::Result<()> {
    let errno = match (from, to) {
        (Kind::PipeWriter, _) | (_, Kind::PipeReader) => libc::EBADF,
        (Kind::Socket, Kind::Socket) => libc::EINVAL,
        _ => return Ok(()),
    };
    Err(io::Error::from_raw_os_error(errno))
}

/// io_uring's splice. The kernel runs every `IORING_OP_SPLICE` on an
/// io-wq worker thread, which blocks until bytes can move; so a socket end
/// is first waited for in the ring (a poll, which holds no thread), and an
/// idle connection costs no kernel thread.
#[track_caller]
fn splice_in_ring(from: End, to: End, len: usize, deadline: Option<Deadline>) -> io::Result<usize> {
    if from.kind == Kind::Socket {
        run_op(SPLICE, op::WaitReadable::new(from.fd), None, deadline)?;
    }
    if to.kind == Kind::Socket {
        run_op(SPLICE, op::WaitWritable::new(to.fd), None, deadline)?;
    }
    run_op(
        SPLICE,
        op::Splice::new(from.fd, to.fd, len, false),
        None,
        deadline,
    )
}

/// The poll backends' splice: non-blocking attempts, and a wait on the end
/// that was not ready between them.
#[track_caller]
fn splice_on_readiness(
    from: End,
    to: End,
    len: usize,
    deadline: Option<Deadline>,
) -> io::Result<usize> {
    loop {
        // `Immediate`: one attempt; `run_op` still refuses a cancelled
        // fiber first.
        match run_op(
            SPLICE,
            op::Splice::new(from.fd, to.fd, len, true),
            None,
            None,
        ) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
        match not_ready(from.fd, to.fd)? {
            Some(Side::From) => {
                run_op(
                    SPLICE,
                    op::WaitReadable::new(from.fd),
                    from.source,
                    deadline,
                )?;
            }
            Some(Side::To) => {
                run_op(SPLICE, op::WaitWritable::new(to.fd), to.source, deadline)?;
            }
            // Both ready by now: bytes came (or room was made) between the
            // attempt and the look. Let the others run before the retry, so
            // a kernel that keeps saying both (and EAGAIN) cannot starve them.
            None => crate::fiber::yield_now(),
        }
    }
}

/// Which end kept a non-blocking splice from moving anything: `from` not
/// readable, or `to` not writable (`from` first: with both idle, bytes
/// must come before room matters). `None` if both are ready now.
fn not_ready(from: RawFd, to: RawFd) -> io::Result<Option<Side>> {
    let mut fds = [
        libc::pollfd {
            fd: from,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: to,
            events: libc::POLLOUT,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfds, and a zero timeout: poll(2) only looks.
    syscall!(poll(fds.as_mut_ptr(), 2, 0))?;
    // An error or hang-up counts as ready: the retry then reports it.
    let ready = |pollfd: &libc::pollfd, wanted: i16| {
        pollfd.revents & (wanted | libc::POLLERR | libc::POLLHUP) != 0
    };
    Ok(if !ready(&fds[0], libc::POLLIN) {
        Some(Side::From)
    } else if !ready(&fds[1], libc::POLLOUT) {
        Some(Side::To)
    } else {
        None
    })
}

/// The earlier of two optional deadlines.
fn earlier(a: Option<Deadline>, b: Option<Deadline>) -> Option<Deadline> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
        (a, b) => a.or(b),
    }
}
