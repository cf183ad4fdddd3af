//! Operations: one struct per system call, each with an io_uring encoding
//! and a readiness path, run by [`run`] on the calling fiber's stack.
//!
//! [`run`] is where invariant 1 (docs/ARCHITECTURE.md) is kept. On io_uring the op,
//! its [`Completion`] and the caller's buffer are in `run`'s frame (or
//! borrowed by it), and `run` returns only after the op's CQE was reaped —
//! also when the fiber was cancelled or the deadline passed, in which case
//! it submits an `ASYNC_CANCEL` and keeps waiting. A cancel's own CQE is
//! ignored (its `user_data` is [`IGNORED`](crate::driver::uring::IGNORED)),
//! so the op's completion is the only one that refers to the frame. On the
//! poll backends nothing is in flight while the fiber is parked, and file
//! ops go through the blocking pool, which follows the same rule.
//!
//! An op that the kernel completed despite a cancellation reports its real
//! result (bytes read, a new connection): nothing is lost, and the
//! cancelled fiber's *next* blocking call returns the cancellation error.

mod fs;
mod net;
mod rw;

pub(crate) use crate::sys::RawAddr;
#[cfg(target_os = "linux")]
pub(crate) use fs::Statx;
pub(crate) use fs::{Close, Fsync, OpenAt};
pub(crate) use net::{Accept, Connect, RecvFrom, RecvMsg, SendMsg, SendTo, Shutdown};
pub(crate) use rw::{MAX_IOVECS, Read, ReadAt, Readv, Recv, Send, Write, WriteAt, Writev};

use std::io;
use std::time::Instant;

#[cfg(target_os = "linux")]
use crate::driver::Completion;
use crate::driver::Driver;
use crate::driver::poll::{Direction, SourceKey, Waiter};
use crate::rt::event_loop::{EventLoop, with_current};
use crate::sys::cancelled;
use crate::time::wheel::TimerEntry;

/// How the poll backends run an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Try the non-blocking call; on `EAGAIN` wait until readable.
    Read,
    /// Try the non-blocking call; on `EAGAIN` wait until writable.
    Write,
    /// A call that may block (regular files): run it on the blocking pool.
    Blocking,
    /// A call that never blocks (shutdown): just make it.
    Immediate,
}

/// One kernel operation. See the module documentation.
pub(crate) trait Op {
    /// What the op returns to its caller.
    type Output;
    /// How poll backends run it.
    fn readiness(&self) -> Readiness;

    /// The io_uring encoding. Pointers in it refer to `self` or to buffers
    /// borrowed for the op's lifetime; `run` keeps both in place until the
    /// CQE has been reaped.
    #[cfg(target_os = "linux")]
    fn sqe(&mut self) -> io_uring::squeue::Entry;

    /// One attempt of the system call. For `Read`/`Write` ops the fd is
    /// non-blocking and `WouldBlock` means "wait for readiness"; for
    /// `Blocking` ops it runs on a pool thread (so the op must hold no
    /// thread-bound state).
    fn attempt(&mut self) -> io::Result<u32>;

    /// Turns the kernel's result into the output; runs on the fiber.
    fn complete(self, result: io::Result<u32>) -> io::Result<Self::Output>;
}

/// A point in time after which an op gives up, and the error it then
/// returns: `EAGAIN` (`WouldBlock`) for socket read/write timeouts, as std
/// does on Unix; `ETIMEDOUT` (`TimedOut`) for connect timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) errno: i32,
}

impl Deadline {
    pub(crate) fn error(self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }
}

/// Runs `op` to completion on the current fiber; `source` is the socket's
/// poll registration (ignored on io_uring).
///
/// # Errors
/// The op's own error; the cancellation error if the fiber is (or gets) cancelled
/// before the op completed; the deadline's error if it passes first.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub(crate) fn run<O: Op>(
    what: &str,
    mut op: O,
    source: Option<SourceKey>,
    deadline: Option<Deadline>,
) -> io::Result<O::Output> {
    let result = with_current(what, |lp| {
        if lp.current_fiber(what).cancelled.get() {
            return Err(lp.refuse_cancelled());
        }
        if let Some(deadline) = deadline
            && deadline.at <= Instant::now()
        {
            return Err(deadline.error());
        }
        match &lp.driver {
            #[cfg(target_os = "linux")]
            Driver::Uring(uring) => run_uring(lp, uring, &mut op, deadline),
            Driver::Poll(poll) => match op.readiness() {
                Readiness::Blocking => run_blocking(lp, &mut op),
                Readiness::Immediate => op.attempt(),
                Readiness::Read => run_ready(lp, poll, &mut op, source, Direction::Read, deadline),
                Readiness::Write => {
                    run_ready(lp, poll, &mut op, source, Direction::Write, deadline)
                }
            },
        }
    });
    op.complete(result)
}

#[cfg(target_os = "linux")]
fn run_uring<O: Op>(
    lp: &EventLoop,
    uring: &crate::driver::uring::Uring,
    op: &mut O,
    deadline: Option<Deadline>,
) -> io::Result<u32> {
    let me = lp.sched.current().expect("checked by run");
    // SAFETY: the running fiber's block is valid while it runs.
    let control = unsafe { me.as_ref() };
    let completion = Completion::new(me);
    let entry = op.sqe().user_data(std::ptr::from_ref(&completion) as u64);
    // SAFETY: `op` and the buffers it borrows outlive this function, and
    // this function returns only after `completion` received the CQE (the
    // loop below), so every pointer in `entry` stays valid (invariant 1).
    unsafe { uring.push(&entry, &lp.sched) };
    let timer = TimerEntry::new(Some(me));
    let armed = deadline.is_some_and(|d| lp.arm_timer(&timer, d.at));
    let mut gave_up: Option<io::Error> = None;
    let raw = loop {
        lp.sched.suspend();
        if let Some(raw) = completion.result() {
            break raw;
        }
        if gave_up.is_none() {
            if control.cancelled.get() {
                gave_up = Some(cancelled());
            } else if timer.fired() {
                gave_up = deadline.map(Deadline::error);
            }
            if gave_up.is_some() {
                uring.cancel(&completion, &lp.sched);
            }
        }
    };
    if armed {
        lp.disarm_timer(&timer);
    }
    match (crate::driver::result_from_raw(raw), gave_up) {
        (Err(_), Some(error)) => Err(error),
        (result, _) => result,
    }
}

fn run_ready<O: Op>(
    lp: &EventLoop,
    poll: &crate::driver::poll::Poll,
    op: &mut O,
    source: Option<SourceKey>,
    direction: Direction,
    deadline: Option<Deadline>,
) -> io::Result<u32> {
    let source = source.expect("readiness ops run on registered sockets");
    let me = lp.sched.current().expect("checked by run");
    // SAFETY: the running fiber's block is valid while it runs.
    let control = unsafe { me.as_ref() };
    let timer = TimerEntry::new(Some(me));
    let mut armed = false;
    let result = loop {
        if poll.is_ready(source, direction) {
            match op.attempt() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll.clear_ready(source, direction);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                result => break result,
            }
        }
        if !armed && let Some(deadline) = deadline {
            armed = lp.arm_timer(&timer, deadline.at);
            if !armed {
                break Err(deadline.error());
            }
        }
        let waiter = Waiter::new(me);
        // SAFETY: `waiter` is unparked below, before this iteration ends.
        unsafe { poll.park(source, direction, &waiter) };
        lp.sched.suspend();
        poll.unpark(source, direction, &waiter);
        if control.cancelled.get() {
            break Err(cancelled());
        }
        if timer.fired() {
            break Err(deadline.expect("only deadlines arm the timer").error());
        }
    };
    if armed {
        lp.disarm_timer(&timer);
    }
    result
}

fn run_blocking<O: Op>(lp: &EventLoop, op: &mut O) -> io::Result<u32> {
    struct SendOp<O>(*mut O);
    // SAFETY: `Blocking` ops hold only plain data (fds, pointers to buffers
    // the fiber keeps alive), so one pool thread may run the attempt while
    // the fiber is suspended and does not touch the op.
    unsafe impl<O> std::marker::Send for SendOp<O> {}
    let op = SendOp(std::ptr::from_mut(op));
    let job = move || {
        let op = op;
        // SAFETY: the fiber waits in `blocking::run` until this job is
        // done (or never started), so the op is live and used only here.
        unsafe { (*op.0).attempt() }
    };
    match crate::blocking::run(lp, job)? {
        Ok(result) => result,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
