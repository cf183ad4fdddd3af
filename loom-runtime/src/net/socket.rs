//! The fd under every loom socket type, set up for the loop's backend, and
//! what the socket types share, written once: the calls that move bytes
//! over a connected stream (TCP and Unix), std's `Read` and `Write` for a
//! stream type and for references to it.
//!
//! On io_uring a socket stays in blocking mode: the kernel then parks the
//! op internally instead of completing it with `EAGAIN`, so `EAGAIN` never
//! reaches the user. On the poll backends it is non-blocking and registered
//! with the loop's poller for its whole life.
//!
//! Sockets are bound to the loop (and thread) that created them, hence
//! `!Send`; [`Socket::into_fd`] hands the fd back in blocking mode, as std
//! expects, for moving it elsewhere.

use std::io::{self, IoSlice, IoSliceMut};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::timeout::{Direction, Timeouts};
use crate::driver::poll::SourceKey;
use crate::op::{self, Deadline, Op};
use crate::rt::current::{in_runtime, run_op, run_op_to_end, with_current};
use crate::sys::set_nonblocking;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: ManuallyDrop<OwnedFd>,
    source: Option<SourceKey>,
    /// Bounds on each read / write op (`net/timeout.rs`).
    timeouts: Timeouts,
    /// Registered with one thread's loop.
    _not_send: PhantomData<*const ()>,
}

impl Socket {
    /// `socket(2)` set up for the current loop's backend.
    pub(crate) fn new(domain: i32, kind: i32, what: &str) -> io::Result<Socket> {
        Socket::with(crate::sys::socket(domain, kind)?, Timeouts::none(), what)
    }

    /// Takes ownership of a socket just made (`socketpair`).
    pub(crate) fn fresh(fd: OwnedFd, what: &str) -> io::Result<Socket> {
        Socket::with(fd, Timeouts::none(), what)
    }

    /// Takes ownership of a socket from std, switching it to the blocking
    /// mode the backend wants, registering it where needed, and keeping
    /// the timeouts std set.
    pub(crate) fn adopt(fd: OwnedFd, what: &str) -> io::Result<Socket> {
        let timeouts = Timeouts::from_kernel(fd.as_raw_fd())?;
        Socket::with(fd, timeouts, what)
    }

    /// A connection `accept` returned on this listening socket: it has the
    /// listener's timeouts, as the kernel's copy does.
    pub(crate) fn accepted(&self, fd: OwnedFd, what: &str) -> io::Result<Socket> {
        Socket::with(fd, self.timeouts.inherited(), what)
    }

    /// Takes ownership of a socket accepted on another loop, with the
    /// timeouts its listener had ([`Socket::timeout_values`]).
    pub(crate) fn with_timeouts(
        fd: OwnedFd,
        values: [Option<Duration>; 2],
        what: &str,
    ) -> io::Result<Socket> {
        Socket::with(fd, Timeouts::from_values(values), what)
    }

    /// The two timeouts (read, write) as plain values, to travel to
    /// another thread.
    pub(crate) fn timeout_values(&self) -> [Option<Duration>; 2] {
        [
            self.timeouts.get(Direction::Read),
            self.timeouts.get(Direction::Write),
        ]
    }

    fn with(fd: OwnedFd, timeouts: Timeouts, what: &str) -> io::Result<Socket> {
        crate::sys::prepare_socket(&fd)?;
        let source = with_current(what, |lp| lp.driver.adopt_fd(fd.as_raw_fd()))?;
        Ok(Socket {
            fd: ManuallyDrop::new(fd),
            source,
            timeouts,
            _not_send: PhantomData,
        })
    }

    /// Gives the fd back, in blocking mode and no longer registered.
    pub(crate) fn into_fd(self) -> io::Result<OwnedFd> {
        let mut this = ManuallyDrop::new(self);
        this.deregister();
        // SAFETY: `this` is never dropped, so the fd is taken exactly once.
        let fd = unsafe { ManuallyDrop::take(&mut this.fd) };
        set_nonblocking(fd.as_raw_fd(), false)?;
        Ok(fd)
    }

    fn deregister(&mut self) {
        if let Some(source) = self.source.take()
            && in_runtime()
        {
            with_current("closing a socket", |lp| {
                lp.driver.release_fd(source, self.fd.as_raw_fd());
            });
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn as_owned(&self) -> &OwnedFd {
        &self.fd
    }

    /// The poll registration (`None` on io_uring), for an op on this
    /// socket built outside `net` (`io::splice`).
    #[cfg(target_os = "linux")]
    pub(crate) fn source(&self) -> Option<SourceKey> {
        self.source
    }

    /// The deadline the read timeout puts on an op starting now.
    #[cfg(target_os = "linux")]
    pub(crate) fn read_deadline(&self) -> Option<Deadline> {
        self.timeouts.deadline(Direction::Read)
    }

    /// The deadline the write timeout puts on an op starting now.
    #[cfg(target_os = "linux")]
    pub(crate) fn write_deadline(&self) -> Option<Deadline> {
        self.timeouts.deadline(Direction::Write)
    }

    /// Runs `op` on this socket (see `rt::current::run_op`).
    #[track_caller]
    pub(crate) fn run<O: Op>(
        &self,
        what: &str,
        op: O,
        deadline: Option<Deadline>,
    ) -> io::Result<O::Output> {
        run_op(what, op, self.source, deadline)
    }

    /// Runs an op that waits for data, bounded by the read timeout.
    #[track_caller]
    pub(crate) fn run_read<O: Op>(&self, what: &str, op: O) -> io::Result<O::Output> {
        self.run(what, op, self.timeouts.deadline(Direction::Read))
    }

    /// Runs an op that waits for buffer space, bounded by the write timeout.
    #[track_caller]
    pub(crate) fn run_write<O: Op>(&self, what: &str, op: O) -> io::Result<O::Output> {
        self.run(what, op, self.timeouts.deadline(Direction::Write))
    }

    /// `recv(2)` with `flags` (0, or `MSG_PEEK`).
    #[track_caller]
    pub(crate) fn recv(&self, what: &str, buf: &mut [u8], flags: i32) -> io::Result<usize> {
        self.run_read(what, op::Recv::new(self.fd(), buf, flags))
    }

    /// `recv(2)` on a stream socket, without flags: `read`.
    #[track_caller]
    pub(crate) fn read_stream(&self, what: &str, buf: &mut [u8]) -> io::Result<usize> {
        self.run_read(what, op::Recv::stream(self.fd(), buf))
    }

    /// `send(2)`; a closed peer is `EPIPE`, never SIGPIPE.
    #[track_caller]
    pub(crate) fn send(&self, what: &str, buf: &[u8]) -> io::Result<usize> {
        self.run_write(what, op::Send::new(self.fd(), buf, 0))
    }

    /// `readv(2)` into up to `op::MAX_IOVECS` buffers.
    #[track_caller]
    pub(crate) fn recv_vectored(
        &self,
        what: &str,
        bufs: &mut [IoSliceMut<'_>],
    ) -> io::Result<usize> {
        self.run_read(what, op::Readv::new(self.fd(), bufs, op::Readiness::Read))
    }

    /// `sendmsg(2)` from up to `op::MAX_IOVECS` buffers: rather than
    /// `writev`, since only `sendmsg` takes `MSG_NOSIGNAL`.
    #[track_caller]
    pub(crate) fn send_vectored(&self, what: &str, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: all-zero is a valid msghdr; the iovec fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = bufs.as_ptr().cast_mut().cast();
        msg.msg_iovlen = bufs.len().min(op::MAX_IOVECS) as _;
        // SAFETY: `msg` and the buffers it points to (IoSlice is
        // ABI-compatible with iovec) live in this frame and the caller's,
        // both of which outlast the op.
        let send = unsafe { op::SendMsg::new(self.fd(), &raw const msg, 0) };
        self.run_write(what, send)
    }

    /// std's `set_read_timeout` / `set_write_timeout`.
    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.timeouts.set(self.fd(), direction, timeout)
    }

    /// std's `read_timeout` / `write_timeout`.
    pub(crate) fn timeout(&self, direction: Direction) -> Option<Duration> {
        self.timeouts.get(direction)
    }

    /// A duplicate of this socket (`dup`), set up the same way; the two
    /// share their timeouts, as the kernel's copy is shared.
    pub(crate) fn try_clone(&self, what: &str) -> io::Result<Socket> {
        Socket::with(self.fd.try_clone()?, self.timeouts.share(), what)
    }

    /// Sets an integer socket option.
    pub(crate) fn set_int(&self, level: i32, name: i32, value: i32) -> io::Result<()> {
        crate::sys::setsockopt(self.fd(), level, name, value)
    }

    /// Reads an integer socket option.
    pub(crate) fn get_int(&self, level: i32, name: i32) -> io::Result<i32> {
        crate::sys::getsockopt(self.fd(), level, name, 0)
    }

    /// `SO_ERROR`, cleared.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        crate::sys::take_socket_error(self.fd())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.deregister();
        // SAFETY: drop runs once; the fd is not used afterwards.
        let fd = unsafe { ManuallyDrop::take(&mut self.fd) };
        close(fd);
    }
}

/// Closes `fd` before returning, as std does — so a dropped listener's port
/// is free at once. From a fiber that may still block it is an
/// [`op::Close`] (on io_uring batched with the loop's other submissions);
/// otherwise (outside a fiber, while unwinding, once cancelled) a plain
/// `close(2)`.
pub(crate) fn close(fd: OwnedFd) {
    let as_op = !std::thread::panicking()
        && crate::fiber::try_current().is_some()
        && !with_current("close", |lp| lp.current_fiber("close").cancelled.get());
    if as_op {
        // Not cancelled (checked just above, and nothing ran since), so
        // `run` submits the op. Errors from close are not actionable (std
        // ignores them too), and the fd is released either way — which is
        // why a call-tree deadline does not cancel it.
        let _ = run_op_to_end("close", op::Close::new(fd));
    } else {
        drop(fd);
    }
}

/// `io::Read` and `io::Write` for a stream type `$t` (with a `socket:
/// Socket` field) and for `&$t`, as std has them for its streams.
macro_rules! stream_io {
    ($t:ident) => {
        impl std::io::Read for $t {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Read for &$t {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.socket
                    .read_stream(concat!(stringify!($t), "::read"), buf)
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.socket
                    .recv_vectored(concat!(stringify!($t), "::read_vectored"), bufs)
            }
        }

        impl std::io::Write for $t {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            #[track_caller]
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Write for &$t {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.socket.send(concat!(stringify!($t), "::write"), buf)
            }

            #[track_caller]
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.socket
                    .send_vectored(concat!(stringify!($t), "::write_vectored"), bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use stream_io;
