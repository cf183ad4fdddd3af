//! The blocking calls the loop itself provides: joining a fiber, sleeping,
//! timers for deadlines, and the count of fibers woken from other threads.

use std::io;
use std::ptr::{self, NonNull};
use std::time::Instant;

use super::EventLoop;
use crate::stack::control::FiberControl;
use crate::sys::cancelled;
use crate::wheel::TimerEntry;

impl EventLoop {
    /// Blocks the running fiber until `target` finishes.
    pub(crate) fn join_wait(&self, target: NonNull<FiberControl>) -> io::Result<()> {
        let me = self.current_fiber("JoinHandle::join");
        assert!(
            !ptr::eq(me, target.as_ptr()),
            "loom: a fiber cannot join itself"
        );
        if me.cancelled.get() {
            return Err(self.refuse_cancelled());
        }
        // SAFETY: the JoinHandle keeps the target's block valid.
        let target = unsafe { target.as_ref() };
        target
            .joiner
            .set(NonNull::new(ptr::from_ref(me).cast_mut()));
        loop {
            self.sched.suspend();
            if target.is_finished() {
                return Ok(());
            }
            if me.cancelled.get() {
                target.joiner.set(None);
                return Err(cancelled());
            }
        }
    }

    /// Blocks the running fiber until `deadline` (forever for `None`);
    /// `now` is the caller's reading of the clock, so a sleep reads it once.
    pub(crate) fn sleep_until(&self, deadline: Option<Instant>, now: Instant) -> io::Result<()> {
        let me = self.current_fiber("loom::time::sleep");
        if me.cancelled.get() {
            return Err(self.refuse_cancelled());
        }
        let entry = TimerEntry::new(self.sched.current());
        if let Some(deadline) = deadline {
            // SAFETY: `entry` stays in this frame until it fired or we
            // cancel it below; it is never moved.
            let armed = deadline > now
                && unsafe { self.timers.arm(&entry, self.tick_at_or_after(deadline)) };
            if !armed {
                // Already due: still let others run, as a sleep would.
                self.sched.yield_now();
                return Ok(());
            }
        }
        loop {
            self.sched.suspend();
            if entry.fired() {
                return Ok(());
            }
            if me.cancelled.get() {
                // SAFETY: `entry` was armed on this loop's wheel (or never).
                unsafe { self.timers.cancel(&entry) };
                return Err(cancelled());
            }
        }
    }

    /// The error for a blocking call made by an already-cancelled fiber.
    /// The fiber first yields: code that swallows the error and calls again
    /// (`incoming().flatten()`, a retry loop) then still lets the loop run,
    /// so shutdown can abandon it after its grace period instead of the
    /// whole loop spinning forever.
    pub(crate) fn refuse_cancelled(&self) -> io::Error {
        self.sched.yield_now();
        cancelled()
    }

    /// Arms `entry` to wake its fiber at `deadline`. Returns `false` (and
    /// arms nothing) if the deadline has already passed.
    ///
    /// The entry must stay in place until it fired or
    /// [`EventLoop::disarm_timer`] was called: callers keep it in the frame
    /// that waits on it.
    pub(crate) fn arm_timer(&self, entry: &TimerEntry, deadline: Instant) -> bool {
        // SAFETY: callers keep `entry` in their frame until it fired or is
        // disarmed (documented above), and it is armed on this loop only.
        deadline > Instant::now()
            && unsafe { self.timers.arm(entry, self.tick_at_or_after(deadline)) }
    }

    /// Takes an armed entry off the wheel (a no-op once it fired).
    pub(crate) fn disarm_timer(&self, entry: &TimerEntry) {
        // SAFETY: entries are only ever armed on their own loop's wheel.
        unsafe { self.timers.cancel(entry) };
    }

    /// Counts a fiber waiting for another thread — a blocking-pool job, a
    /// cross-thread primitive — whose wake-up comes through the mailbox (so
    /// the loop must not call that wait a deadlock).
    pub(crate) fn remote_wait_started(&self) {
        self.remote_waits.set(self.remote_waits.get() + 1);
    }

    /// The wait counted by [`EventLoop::remote_wait_started`] ended.
    pub(crate) fn remote_wait_ended(&self) {
        self.remote_waits.set(self.remote_waits.get() - 1);
    }
}
