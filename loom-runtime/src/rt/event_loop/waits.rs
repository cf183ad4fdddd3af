//! The blocking calls the loop itself provides: joining a fiber, sleeping,
//! timers for deadlines, and the count of fibers woken from other threads.
//! Joining and sleeping honour the fiber's call-tree deadline
//! (`loom::time::with_deadline`) as every other wait does.

use std::io;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use super::EventLoop;
use crate::stack::control::FiberControl;
use crate::stats::WaitKind;
use crate::sys::cancelled;
use crate::wheel::TimerEntry;

/// The longest a fiber spins for a cross-thread wake-up
/// ([`EventLoop::cross_spin_until`]) while no op is in flight.
pub(crate) const CROSS_SPIN_MAX: Duration = Duration::from_micros(20);
/// The same while ops are in flight: the most a spin delays noticing
/// their completions.
pub(crate) const CROSS_SPIN_MAX_IO: Duration = Duration::from_micros(5);

impl EventLoop {
    /// Blocks the running fiber until `target` finishes, or until the
    /// fiber's call-tree deadline (`TimedOut`).
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
        if let Some(at) = me.deadline.get() {
            // Apart, so that a join without a deadline (most) pays one
            // test for it and no timer.
            return self.join_wait_until(me, target, at);
        }
        target
            .joiner
            .set(NonNull::new(ptr::from_ref(me).cast_mut()));
        loop {
            self.sched.suspend(WaitKind::Join);
            if target.is_finished() {
                return Ok(());
            }
            if me.cancelled.get() {
                target.joiner.set(None);
                return Err(cancelled());
            }
        }
    }

    /// [`EventLoop::join_wait`] under the call-tree deadline `at`.
    #[inline(never)]
    fn join_wait_until(
        &self,
        me: &FiberControl,
        target: &FiberControl,
        at: Instant,
    ) -> io::Result<()> {
        let timer = TimerEntry::new(self.sched.current());
        if !self.arm_timer(&timer, at) {
            return Err(timed_out());
        }
        target
            .joiner
            .set(NonNull::new(ptr::from_ref(me).cast_mut()));
        let result = loop {
            self.sched.suspend(WaitKind::Join);
            if target.is_finished() {
                break Ok(());
            }
            let interrupted = if me.cancelled.get() {
                cancelled()
            } else if timer.fired() {
                timed_out()
            } else {
                continue;
            };
            target.joiner.set(None);
            break Err(interrupted);
        };
        self.disarm_timer(&timer);
        result
    }

    /// Blocks the running fiber until `deadline` (forever for `None`);
    /// `now` is the caller's reading of the clock, so a sleep reads it once.
    /// A sleep that would end after the fiber's call-tree deadline ends at
    /// that deadline instead, with `TimedOut`.
    pub(crate) fn sleep_until(&self, deadline: Option<Instant>, now: Instant) -> io::Result<()> {
        let me = self.current_fiber("loom::time::sleep");
        if me.cancelled.get() {
            return Err(self.refuse_cancelled());
        }
        if deadline.is_some_and(|deadline| deadline <= now) {
            // Already due: still let others run, as a sleep would.
            self.sched.yield_now();
            return Ok(());
        }
        // The wake-up: the sleep's end, unless the fiber's deadline is
        // earlier (a tie ends the sleep in time, so it succeeds).
        let (wake, cut_short) = match (deadline, me.deadline.get()) {
            (Some(end), Some(limit)) if limit < end => (Some(limit), true),
            (None, Some(limit)) => (Some(limit), true),
            (end, _) => (end, false),
        };
        let entry = TimerEntry::new(self.sched.current());
        if let Some(wake) = wake {
            // SAFETY: `entry` stays in this frame until it fired or we
            // cancel it below; it is never moved.
            let armed =
                wake > now && unsafe { self.timers.arm(&entry, self.tick_at_or_after(wake)) };
            if !armed {
                // Due already: yield as a due sleep does, so that a loop
                // retrying the sleep cannot starve the other fibers.
                self.sched.yield_now();
                return if cut_short { Err(timed_out()) } else { Ok(()) };
            }
        }
        loop {
            self.sched.suspend(WaitKind::Timer);
            if entry.fired() {
                return if cut_short { Err(timed_out()) } else { Ok(()) };
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

    /// Until when a fiber about to wait for another thread may instead
    /// watch for the change it waits for, spinning on this loop's thread
    /// (`sync::waiter::spin_until`); `None` if the loop has anything else
    /// to do — a runnable fiber, mail, a deferred spawn, a timer due, a
    /// shutdown under way — or spinning is off (`idle_spin` zero). The
    /// spin lasts at most `idle_spin` capped at [`CROSS_SPIN_MAX`], or
    /// [`CROSS_SPIN_MAX_IO`] while ops are in flight: that is how late a
    /// completion may be noticed because of it (mail stops it at once).
    pub(crate) fn cross_spin_until(&self) -> Option<Instant> {
        if self.config.idle_spin.is_zero()
            || self.sched.has_runnable()
            || self.driver.remote().has_messages()
            || self.shutdown_deadline.get().is_some()
            || !self.deferred_spawns.borrow().is_empty()
        {
            return None;
        }
        let cap = if self.driver.has_pending() {
            CROSS_SPIN_MAX_IO
        } else {
            CROSS_SPIN_MAX
        };
        let now = Instant::now();
        let mut until = now + self.config.idle_spin.min(cap);
        if let Some(tick) = self.timers.next_tick() {
            until = until.min(self.instant_of(tick));
        }
        (until > now).then_some(until)
    }

    /// The wait counted by [`EventLoop::remote_wait_started`] ended.
    pub(crate) fn remote_wait_ended(&self) {
        self.remote_waits.set(self.remote_waits.get() - 1);
    }
}

/// The error of a wait that the fiber's call-tree deadline ended; a plain
/// kind, as `loom::sync`'s timeouts, so it allocates nothing.
fn timed_out() -> io::Error {
    io::ErrorKind::TimedOut.into()
}
