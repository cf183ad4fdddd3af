//! Running an op on the calling fiber's loop: the loop's own checks (a
//! cancelled fiber, a deadline already passed), then the loop's driver,
//! which keeps the op alive until the kernel is done with it
//! (`driver/run.rs`). Sockets and files call [`run_op`]; only this file
//! hands the event loop to the driver, as its [`Host`].

use std::io;
use std::thread;
use std::time::Instant;

use super::event_loop::{EventLoop, with_current};
use crate::driver::poll::SourceKey;
use crate::driver::run::Host;
use crate::op::{Deadline, Op};
use crate::sched::Scheduler;
use crate::wheel::TimerEntry;

/// Runs `op` to completion on the current fiber; `source` is the socket's
/// poll registration (ignored on io_uring).
///
/// # Errors
/// The op's own error; the cancellation error if the fiber is (or gets)
/// cancelled before the op completed; the deadline's error if it passes
/// first.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub(crate) fn run_op<O: Op>(
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
        lp.driver.run(lp, &mut op, source, deadline)
    });
    op.complete(result)
}

impl Host for EventLoop {
    #[inline]
    fn sched(&self) -> &Scheduler {
        &self.sched
    }

    #[inline]
    fn arm_timer(&self, timer: &TimerEntry, at: Instant) -> bool {
        EventLoop::arm_timer(self, timer, at)
    }

    #[inline]
    fn disarm_timer(&self, timer: &TimerEntry) {
        EventLoop::disarm_timer(self, timer)
    }

    fn run_blocking<F>(&self, job: F) -> io::Result<thread::Result<io::Result<u32>>>
    where
        F: FnOnce() -> io::Result<u32> + Send,
    {
        crate::blocking::run(self, job)
    }
}
