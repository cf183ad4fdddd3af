//! Running one op on the calling fiber, on whichever backend the loop has.
//!
//! This is where invariant 1 (docs/ARCHITECTURE.md) is kept. On io_uring
//! the op, its [`Completion`] and the caller's buffer are in
//! [`Driver::run`]'s frame (or borrowed by it), and it returns only after
//! the op's CQE was reaped — also when the fiber was cancelled or the
//! deadline passed, in which case it submits an `ASYNC_CANCEL` and keeps
//! waiting. A cancel's own CQE is ignored (its `user_data` is
//! [`IGNORED`](super::uring::IGNORED)), so the op's completion is the only
//! one that refers to the frame. On the poll backends nothing is in flight
//! while the fiber is parked, and file ops go through the blocking pool,
//! which follows the same rule.
//!
//! An op that the kernel completed despite a cancellation reports its real
//! result (bytes read, a new connection): nothing is lost, and the
//! cancelled fiber's *next* blocking call returns the cancellation error.
//!
//! What the run needs from the loop above the driver — its scheduler, its
//! timers, its blocking pool — comes through [`Host`], which the event
//! loop implements; the driver never names the loop.

use std::io;
use std::thread;
use std::time::Instant;

#[cfg(target_os = "linux")]
use super::Completion;
use super::Driver;
use super::poll::{Direction, Poll, SourceKey, Waiter};
use crate::op::{Deadline, Op, Readiness};
use crate::sched::Scheduler;
use crate::sys::cancelled;
use crate::wheel::TimerEntry;

/// The loop services an op run uses.
pub(crate) trait Host {
    /// The loop's scheduler; its current fiber is the one running the op.
    fn sched(&self) -> &Scheduler;

    /// Arms `timer` to wake its fiber at `at`; `false` (nothing armed) if
    /// `at` has passed. `timer` stays in the caller's frame until it fired
    /// or was disarmed.
    fn arm_timer(&self, timer: &TimerEntry, at: Instant) -> bool;

    /// Takes an armed timer off the wheel (a no-op once it fired).
    fn disarm_timer(&self, timer: &TimerEntry);

    /// Runs `job` on the blocking pool while the calling fiber waits; the
    /// job may borrow from the caller's frame, which outlives it.
    fn run_blocking<F>(&self, job: F) -> io::Result<thread::Result<io::Result<u32>>>
    where
        F: FnOnce() -> io::Result<u32> + Send;
}

impl Driver {
    /// Runs `op` to completion on the host's current fiber and returns the
    /// kernel's result; `source` is the socket's poll registration
    /// (ignored on io_uring). The caller has checked that the fiber is not
    /// cancelled and that `deadline` has not passed.
    #[inline]
    pub(crate) fn run<O: Op, H: Host>(
        &self,
        host: &H,
        op: &mut O,
        source: Option<SourceKey>,
        deadline: Option<Deadline>,
    ) -> io::Result<u32> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(uring) => run_uring(host, uring, op, deadline),
            Driver::Poll(poll) => match op.readiness() {
                Readiness::Blocking => run_blocking(host, op),
                Readiness::Immediate => op.attempt(),
                Readiness::Read => run_ready(host, poll, op, source, Direction::Read, deadline),
                Readiness::Write => run_ready(host, poll, op, source, Direction::Write, deadline),
            },
        }
    }
}

#[cfg(target_os = "linux")]
fn run_uring<O: Op, H: Host>(
    host: &H,
    uring: &super::uring::Uring,
    op: &mut O,
    deadline: Option<Deadline>,
) -> io::Result<u32> {
    let me = host.sched().current().expect("checked by run");
    // SAFETY: the running fiber's block is valid while it runs.
    let control = unsafe { me.as_ref() };
    let completion = Completion::new(me);
    let entry = op.sqe().user_data(std::ptr::from_ref(&completion) as u64);
    // SAFETY: `op` and the buffers it borrows outlive this function, and
    // this function returns only after `completion` received the CQE (the
    // loop below), so every pointer in `entry` stays valid (invariant 1).
    unsafe { uring.push(&entry, host.sched()) };
    let timer = TimerEntry::new(Some(me));
    let armed = deadline.is_some_and(|d| host.arm_timer(&timer, d.at));
    let mut gave_up: Option<io::Error> = None;
    let raw = loop {
        host.sched().suspend();
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
                uring.cancel(&completion, host.sched());
            }
        }
    };
    if armed {
        host.disarm_timer(&timer);
    }
    match (super::result_from_raw(raw), gave_up) {
        (Err(_), Some(error)) => Err(error),
        (result, _) => result,
    }
}

fn run_ready<O: Op, H: Host>(
    host: &H,
    poll: &Poll,
    op: &mut O,
    source: Option<SourceKey>,
    direction: Direction,
    deadline: Option<Deadline>,
) -> io::Result<u32> {
    let source = source.expect("readiness ops run on registered sockets");
    let me = host.sched().current().expect("checked by run");
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
            armed = host.arm_timer(&timer, deadline.at);
            if !armed {
                break Err(deadline.error());
            }
        }
        let waiter = Waiter::new(me);
        // SAFETY: `waiter` is unparked below, before this iteration ends.
        unsafe { poll.park(source, direction, &waiter) };
        host.sched().suspend();
        poll.unpark(source, direction, &waiter);
        if control.cancelled.get() {
            break Err(cancelled());
        }
        if timer.fired() {
            break Err(deadline.expect("only deadlines arm the timer").error());
        }
    };
    if armed {
        host.disarm_timer(&timer);
    }
    result
}

fn run_blocking<O: Op, H: Host>(host: &H, op: &mut O) -> io::Result<u32> {
    struct SendOp<O>(*mut O);
    // SAFETY: `Blocking` ops hold only plain data (fds, pointers to buffers
    // the fiber keeps alive), so one pool thread may run the attempt while
    // the fiber is suspended and does not touch the op.
    unsafe impl<O> std::marker::Send for SendOp<O> {}
    let op = SendOp(std::ptr::from_mut(op));
    let job = move || {
        let op = op;
        // SAFETY: the fiber waits in `run_blocking` until this job is
        // done (or never started), so the op is live and used only here.
        unsafe { (*op.0).attempt() }
    };
    match host.run_blocking(job)? {
        Ok(result) => result,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
