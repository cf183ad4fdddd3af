//! What loom's sockets share, written once: the calls that move bytes over
//! a connected stream (TCP and Unix), std's `Read` and `Write` for a stream
//! type and for references to it, and the read/write timeouts every socket
//! type has.

use std::io::{self, IoSlice, IoSliceMut};

use super::socket::Socket;
use crate::op;

impl Socket {
    /// `recv(2)` with `flags` (0, or `MSG_PEEK`).
    #[track_caller]
    pub(crate) fn recv(&self, what: &str, buf: &mut [u8], flags: i32) -> io::Result<usize> {
        self.run_read(what, op::Recv::new(self.fd(), buf, flags))
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
                self.socket.recv(concat!(stringify!($t), "::read"), buf, 0)
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

/// The read and write timeouts, as methods of a socket type with a
/// `socket: Socket` field; expands inside its `impl` block.
macro_rules! timeouts {
    () => {
        /// Bounds every later read or receive: one that waits longer fails
        /// with `WouldBlock`; `None` waits forever.
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, like std.
        pub fn set_read_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.socket.set_read_timeout(timeout)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.socket.read_timeout())
        }

        /// Bounds every later write or send; see
        /// [`set_read_timeout`](Self::set_read_timeout).
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, like std.
        pub fn set_write_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.socket.set_write_timeout(timeout)
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.socket.write_timeout())
        }
    };
}
pub(crate) use timeouts;
