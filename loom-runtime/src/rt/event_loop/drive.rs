//! The loop itself: run a batch of fibers, fire due timers, give the
//! driver a turn (waiting in the kernel when nothing is runnable), watch
//! the mailbox while cross-thread mail flows, and recover from a deadlock.

use std::ptr::{self, NonNull};
use std::time::Instant;

use super::{EventLoop, RUN_BUDGET};
use crate::driver::Wait;
use crate::sched::Resumed;
use crate::stack::control::FiberControl;
use crate::stack::pool::PooledStack;

/// Loop turns between two publications of the gauges while the loop stays
/// busy: copying them costs a few nanoseconds, which a turn of a tight
/// ping-pong would feel. A loop also publishes before it parks and when one
/// of its fibers reads the metrics; with Tracy compiled in, every turn (the
/// plots are made from them).
const PUBLISH_EVERY: u32 = if cfg!(feature = "tracy") { 1 } else { 64 };

impl EventLoop {
    /// Runs fibers until shutdown — `main` finished (loop 0), or loop 0
    /// asked for it (the others) — and every fiber has finished too, or the
    /// shutdown grace period ran out.
    pub(crate) fn drive(&self, main: Option<NonNull<FiberControl>>) {
        let mut main_returned = false;
        loop {
            main_returned |= self.run_batch(main);
            if self.driver.remote().has_messages() {
                self.driver.remote().drain(&self.sched);
            }
            if !self.deferred_spawns.borrow().is_empty() {
                self.spawn_deferred();
            }
            if main_returned && self.shutdown_deadline.get().is_none() {
                self.begin_shutdown();
                self.shut_down_other_loops();
            }
            if let Some(deadline) = self.shutdown_deadline.get() {
                if self.sched.unfinished_count() == 0 {
                    return;
                }
                if Instant::now() >= deadline {
                    self.abandon_unfinished();
                    return;
                }
            }
            self.fire_due_timers();
            let turn = self.turns.get().wrapping_add(1);
            self.turns.set(turn);
            if turn.is_multiple_of(PUBLISH_EVERY) {
                self.publish_gauges();
            }
            if self.sched.has_runnable() {
                if self.driver.has_pending() {
                    self.driver.turn(Wait::No, &self.sched);
                }
            } else if !self.idle() {
                self.abandon_unfinished();
                return;
            }
        }
    }

    /// Resumes up to [`RUN_BUDGET`] runnable fibers; returns whether
    /// `main` was one of them and returned.
    pub(super) fn run_batch(&self, main: Option<NonNull<FiberControl>>) -> bool {
        let mut main_returned = false;
        for _ in 0..RUN_BUDGET {
            let Some(fiber) = self.sched.next_runnable() else {
                break;
            };
            // SAFETY: taken off the run queue just now, so admitted,
            // runnable and unfinished.
            if unsafe { self.sched.resume(fiber) } == Resumed::Returned {
                main_returned |= main == Some(fiber);
                self.on_fiber_returned(fiber);
            }
        }
        main_returned
    }

    pub(super) fn on_fiber_returned(&self, fiber: NonNull<FiberControl>) {
        // SAFETY: the fiber just returned; its block is valid until released.
        let control = unsafe { fiber.as_ref() };
        // SAFETY: the coroutine was initialised at spawn and has returned,
        // so moving it out and dropping it runs no fiber code and unwinds
        // nothing; the slot's memory stays ours until `release_fiber`.
        let coroutine = unsafe { ptr::read(control.coroutine.get()).assume_init() };
        // The stack handle is plain data; the slot is released separately.
        let _stack: PooledStack = coroutine.into_stack();
        if let Some(joiner) = control.joiner.take() {
            self.sched.wake(joiner);
        }
        if control.detached.get() {
            // SAFETY: finished, and a detached fiber dropped its own result.
            unsafe { self.release_fiber(fiber) };
        }
    }

    pub(super) fn fire_due_timers(&self) {
        if self.timers.len() == 0 {
            return;
        }
        let now = self.tick_at_or_before(Instant::now());
        self.timers.fire_due(now, |entry| {
            if let Some(fiber) = entry.fiber() {
                self.sched.wake(fiber);
            }
        });
    }

    /// Whether anything but this loop's own fibers may still wake one of
    /// them: ops in flight, another thread, or another loop.
    pub(super) fn wake_up_possible(&self) -> bool {
        self.driver.has_pending()
            || self.remote_waits.get() > 0
            || self.loop_count() > 1
            || !self.deferred_spawns.borrow().is_empty()
    }

    /// Waits in the kernel until an op completes, another thread hands
    /// work over, or the next timer is due. Returns `false` when nothing
    /// can ever wake a fiber again (a deadlock that cancellation did not
    /// resolve).
    ///
    /// Deadlocks are detected only in a runtime of one loop: with several,
    /// a fiber may always be woken by another loop.
    pub(super) fn idle(&self) -> bool {
        let next_timer = self.timers.next_tick().map(|tick| self.instant_of(tick));
        let wake_at = match (next_timer, self.shutdown_deadline.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if wake_at.is_none() && !self.wake_up_possible() {
            return self.recover_from_deadlock();
        }
        if self.mail_recently.get() && self.spin_for_mail(wake_at) {
            return true;
        }
        let timeout = wake_at.map(|at| at.saturating_duration_since(Instant::now()));
        // What another thread reads while this loop is parked is current.
        self.publish_gauges();
        self.driver.turn(Wait::at_most(timeout), &self.sched);
        self.mail_recently
            .set(self.driver.remote().drain(&self.sched) > 0);
        true
    }

    /// Watches the mailbox for up to `idle_spin` (or until `wake_at`)
    /// before the loop parks, and opens what arrives. A parked loop costs
    /// its sender a system call and itself a kernel wake-up — tens of
    /// microseconds in a VM — so while messages are flowing, spinning a
    /// little is much cheaper. Returns whether mail arrived.
    pub(super) fn spin_for_mail(&self, wake_at: Option<Instant>) -> bool {
        let remote = self.driver.remote();
        let mut until = None;
        loop {
            for _ in 0..64 {
                if remote.has_messages() {
                    remote.drain(&self.sched);
                    return true;
                }
                std::hint::spin_loop();
            }
            let now = Instant::now();
            let until = *until.get_or_insert_with(|| {
                let spin_end = now + self.config.idle_spin;
                wake_at.map_or(spin_end, |at| at.min(spin_end))
            });
            if now >= until {
                self.mail_recently.set(false);
                return false;
            }
        }
    }

    pub(super) fn recover_from_deadlock(&self) -> bool {
        if self.cancel_new.get() {
            return false;
        }
        log::error!(
            "loom: all {} fibers are blocked and nothing can wake them (deadlock); cancelling them all",
            self.sched.unfinished_count()
        );
        self.cancel_all();
        true
    }
}
