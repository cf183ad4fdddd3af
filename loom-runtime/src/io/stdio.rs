//! Moving bytes through fd 0, 1 and 2 without blocking the loop and
//! without changing the mode of their open file descriptions, which the
//! parent shares (see `private.rs`).
//!
//! Each loop picks, per stream and once, a [`Path`] (the table is in the
//! module documentation of `loom::io`) and keeps it in a thread-local
//! [`Channel`]. The stream types above serialize every call on a stream
//! process-wide, so a channel is never used by two ops at once and may
//! switch paths between calls.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};

use super::private::{self, FileKind, Registered};
use crate::op::{self, Readiness};
use crate::rt::current::{current_rc, run_op, try_with_current};
use crate::rt::event_loop::EventLoop;
use crate::sys::syscall;

/// One of the three standard streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    In = 0,
    Out = 1,
    Err = 2,
}

impl Stream {
    pub(crate) fn fd(self) -> RawFd {
        self as RawFd
    }

    fn writes(self) -> bool {
        self != Stream::In
    }

    fn what(self) -> &'static str {
        match self {
            Stream::In => "loom::io::stdin",
            Stream::Out => "loom::io::stdout",
            Stream::Err => "loom::io::stderr",
        }
    }
}

/// `read(2)` from stdin, parking only the calling fiber (blocking the
/// thread outside a fiber). A closed fd 0 reads as end of file, as std's.
pub(crate) fn read(buf: &mut [u8]) -> io::Result<usize> {
    let result = if on_fiber() {
        transfer(Stream::In, |channel| channel.read(buf))
    } else {
        blocking(Stream::In, || {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
            syscall!(read(Stream::In.fd(), buf.as_mut_ptr().cast(), buf.len())).map(|n| n as usize)
        })
    };
    closed_as(result, 0)
}

/// `write(2)` to stdout or stderr, parking only the calling fiber
/// (blocking the thread outside a fiber). A closed fd swallows the bytes,
/// as std's stdout and stderr do.
pub(crate) fn write(stream: Stream, buf: &[u8]) -> io::Result<usize> {
    debug_assert!(stream.writes());
    let result = if on_fiber() {
        transfer(stream, |channel| channel.write(stream, buf))
    } else {
        blocking(stream, || {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
            syscall!(write(stream.fd(), buf.as_ptr().cast(), buf.len())).map(|n| n as usize)
        })
    };
    closed_as(result, buf.len())
}

/// std treats a stdio fd that is not open as an empty input and a
/// bottomless output, so a daemon started with them closed still runs.
fn closed_as(result: io::Result<usize>, instead: usize) -> io::Result<usize> {
    match result {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(instead),
        result => result,
    }
}

fn on_fiber() -> bool {
    try_with_current(|lp| lp.sched.current().is_some()).unwrap_or(false)
}

/// Runs `attempt` on this loop's channel for `stream`; a `WouldBlock` from
/// the original fd (its description was made non-blocking by someone
/// else) moves the channel to its fallback path and tries again.
fn transfer(
    stream: Stream,
    mut attempt: impl FnMut(&Channel) -> io::Result<usize>,
) -> io::Result<usize> {
    let channel = channel(stream);
    match attempt(&channel) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && channel.is_original() => {
            let Some(fallback) = Channel::fallback(stream) else {
                return Err(e);
            };
            let fallback = Rc::new(fallback);
            cache(stream, fallback.clone());
            attempt(&fallback)
        }
        result => result,
    }
}

/// How a loop moves one stream's bytes.
#[derive(Debug)]
enum Path {
    /// Ops on the original fd, in whatever mode it is: on io_uring the
    /// kernel waits inside the op; on the poll backends the op runs on the
    /// blocking pool.
    Original,
    /// Ops on a private description of the same file
    /// ([`Registered::private`]).
    Private(Registered),
    /// Readiness ops on a registered duplicate of the shared description
    /// ([`Registered::shared`]). A socket's calls carry `MSG_DONTWAIT`;
    /// anything else's rely on the description already being
    /// non-blocking (this path is taken only after it said `EAGAIN`).
    Shared { fd: Registered, socket: bool },
}

/// One loop's path for one stream.
#[derive(Debug)]
struct Channel {
    /// The loop the path was chosen for (its registrations are that
    /// loop's). Weak, so a cached channel never keeps a finished runtime's
    /// loop alive; holding it keeps the address from being reused, so
    /// comparing addresses finds the loop itself.
    owner: Weak<EventLoop>,
    path: Path,
}

thread_local! {
    /// This thread's channels, by fd; replaced when another loop (a later
    /// runtime) uses the stream on this thread.
    static CHANNELS: RefCell<[Option<Rc<Channel>>; 3]> = const { RefCell::new([None, None, None]) };
}

/// This loop's channel for `stream`, chosen on first use. The caller is on
/// a fiber.
fn channel(stream: Stream) -> Rc<Channel> {
    let cached = CHANNELS.with_borrow(|channels| channels[stream as usize].clone());
    if let Some(channel) = cached
        && try_with_current(|lp| std::ptr::eq(channel.owner.as_ptr(), lp)) == Some(true)
    {
        return channel;
    }
    let channel = Rc::new(Channel::open(stream));
    cache(stream, channel.clone());
    channel
}

fn cache(stream: Stream, channel: Rc<Channel>) {
    // The replaced channel is dropped outside the borrow: its drop
    // deregisters from a loop, which must not find the cell borrowed.
    let old = CHANNELS.with_borrow_mut(|channels| channels[stream as usize].replace(channel));
    drop(old);
}

impl Channel {
    /// The path this loop starts with (see the table in `loom::io`).
    fn open(stream: Stream) -> Channel {
        let lp = current_rc(stream.what());
        let fd = stream.fd();
        let path = if lp.driver.is_completion_based() {
            Path::Original
        } else {
            match private::kind(fd) {
                FileKind::Stream => private::reopen(fd, stream.writes())
                    .and_then(|own| Registered::private(&lp, own))
                    .map_or(Path::Original, Path::Private),
                FileKind::Socket => private::duplicate(fd)
                    .and_then(|dup| Registered::shared(&lp, dup))
                    .map_or(Path::Original, |fd| Path::Shared { fd, socket: true }),
                FileKind::File => Path::Original,
            }
        };
        Channel::on(&lp, path)
    }

    /// Where to go when the original fd says `WouldBlock`, if anywhere: on
    /// io_uring (whose ops wait even on non-blocking pipes and sockets, so
    /// this is an older kernel's terminal or the like) a private
    /// description made blocking; on the poll backends, readiness on the
    /// shared description, which is non-blocking as it just showed.
    fn fallback(stream: Stream) -> Option<Channel> {
        let lp = current_rc(stream.what());
        let fd = stream.fd();
        let path = if lp.driver.is_completion_based() {
            private::reopen(fd, stream.writes())
                .and_then(|own| Registered::private(&lp, own))
                .map(Path::Private)
        } else {
            private::duplicate(fd)
                .and_then(|dup| Registered::shared(&lp, dup))
                .map(|fd| Path::Shared { fd, socket: false })
        };
        path.ok().map(|path| Channel::on(&lp, path))
    }

    fn on(lp: &Rc<EventLoop>, path: Path) -> Channel {
        Channel {
            owner: Rc::downgrade(lp),
            path,
        }
    }

    fn is_original(&self) -> bool {
        matches!(self.path, Path::Original)
    }

    #[track_caller]
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let what = Stream::In.what();
        match &self.path {
            Path::Original => run_op(
                what,
                op::Read::new(Stream::In.fd(), buf, Readiness::Blocking),
                None,
                None,
            ),
            Path::Private(fd) | Path::Shared { fd, socket: false } => run_op(
                what,
                op::Read::new(fd.fd(), buf, Readiness::Read),
                fd.source(),
                None,
            ),
            Path::Shared { fd, socket: true } => run_op(
                what,
                op::Recv::new(fd.fd(), buf, libc::MSG_DONTWAIT),
                fd.source(),
                None,
            ),
        }
    }

    #[track_caller]
    fn write(&self, stream: Stream, buf: &[u8]) -> io::Result<usize> {
        let what = stream.what();
        match &self.path {
            Path::Original => run_op(
                what,
                op::Write::new(stream.fd(), buf, Readiness::Blocking),
                None,
                None,
            ),
            Path::Private(fd) | Path::Shared { fd, socket: false } => run_op(
                what,
                op::Write::new(fd.fd(), buf, Readiness::Write),
                fd.source(),
                None,
            ),
            Path::Shared { fd, socket: true } => run_op(
                what,
                op::Send::new(fd.fd(), buf, libc::MSG_DONTWAIT),
                fd.source(),
                None,
            ),
        }
    }
}

/// Outside a fiber: the system call itself, blocking the thread as std's
/// would, and waiting with poll(2) if the description is non-blocking.
fn blocking(stream: Stream, mut call: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    let events = if stream.writes() {
        libc::POLLOUT
    } else {
        libc::POLLIN
    };
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut pollfd = libc::pollfd {
                    fd: stream.fd(),
                    events,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; waiting is the point here.
                match syscall!(poll(&mut pollfd, 1, -1)) {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
                    _ => {}
                }
            }
            result => return result,
        }
    }
}
