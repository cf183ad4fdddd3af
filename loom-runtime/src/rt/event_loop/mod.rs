//! One event loop: the scheduler, stack pool and timer wheel of one thread,
//! and the loop that drives them.
//!
//! The loop is the only code that resumes fibers. Each turn it runs up to
//! [`RUN_BUDGET`] runnable fibers, fires due timers, and gives the I/O
//! driver a turn: a non-blocking one (submit, reap) while fibers are still
//! runnable and I/O is outstanding, else one that waits in the kernel until
//! an op completes or the next timer is due. The data plane — spawn,
//! suspend, wake, timer arming, queueing an op — allocates nothing and makes
//! no system call of its own.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::Driver;
use crate::driver::remote::{Envelope, Remote};
use crate::list::List;
use crate::sched::Scheduler;
use crate::stack::control::FiberControl;
use crate::stack::pool::StackPool;
use crate::stats::LoopStats;
use crate::wheel::TimerWheel;

mod drive;
mod shutdown;
mod spawn;
mod waits;

pub(crate) use shutdown::opened_on;
pub(crate) use spawn::Spawned;

/// Fibers resumed per loop turn before timers are looked at again, so a
/// crowd of yielding fibers cannot starve timers — and so the loop reads
/// the clock once per batch rather than once per switch.
pub(crate) const RUN_BUDGET: usize = 64;

/// Static configuration of one loop.
#[derive(Debug, Clone)]
pub(crate) struct LoopConfig {
    pub(crate) stack_bytes: usize,
    pub(crate) shutdown_timeout: Duration,
    /// How long an idle loop watches its mailbox before parking in the
    /// kernel, when its last wake-up came through the mailbox.
    pub(crate) idle_spin: Duration,
}

/// What every loop of one runtime knows about the others.
#[derive(Debug)]
pub(crate) struct RuntimeShared {
    /// The remote end of loop `i`'s driver, by loop index.
    pub(crate) remotes: Box<[Arc<Remote>]>,
    /// Loop `i`'s counters, by loop index.
    pub(crate) stats: Arc<[Arc<LoopStats>]>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct EventLoop {
    pub(crate) sched: Scheduler,
    pub(crate) pool: StackPool,
    pub(crate) driver: Driver,
    /// This loop's index in its runtime (0 runs the main fiber).
    pub(crate) index: usize,
    pub(crate) shared: Arc<RuntimeShared>,
    /// Fibers waiting for another thread to wake them (blocking-pool jobs,
    /// cross-thread primitives): while there are any, an idle loop with no
    /// timers is waiting, not deadlocked.
    remote_waits: Cell<usize>,
    /// Spawns sent from other loops that found every stack permit taken;
    /// retried as permits come back.
    deferred_spawns: std::cell::RefCell<std::collections::VecDeque<NonNull<Envelope>>>,
    stack_waiters: List,
    timers: TimerWheel,
    start: Instant,
    config: LoopConfig,
    next_fiber_id: Cell<u64>,
    /// New fibers are born cancelled (shutdown, or deadlock recovery).
    cancel_new: Cell<bool>,
    /// The main fiber finished; unfinished fibers get until this instant.
    shutdown_deadline: Cell<Option<Instant>>,
    /// The last idle period ended with mail: cross-thread traffic is
    /// flowing, so the next one spins on the mailbox before parking.
    mail_recently: Cell<bool>,
    /// Loop turns so far (wrapping): when to publish the gauges.
    turns: Cell<u32>,
}

impl EventLoop {
    pub(crate) fn new(
        pool: StackPool,
        driver: Driver,
        config: LoopConfig,
        index: usize,
        shared: Arc<RuntimeShared>,
    ) -> EventLoop {
        let stats = Arc::clone(&shared.stats[index]);
        EventLoop {
            sched: Scheduler::new(stats),
            pool,
            driver,
            index,
            shared,
            remote_waits: Cell::new(0),
            deferred_spawns: Default::default(),
            stack_waiters: List::new(),
            timers: TimerWheel::new(),
            start: Instant::now(),
            config,
            next_fiber_id: Cell::new(1),
            cancel_new: Cell::new(false),
            shutdown_deadline: Cell::new(None),
            mail_recently: Cell::new(false),
            turns: Cell::new(0),
        }
    }

    /// The number of loops in this loop's runtime.
    pub(crate) fn loop_count(&self) -> usize {
        self.shared.remotes.len()
    }

    /// Cancels `fiber`: its current or next blocking call returns
    /// the cancellation error (`ECANCELED`).
    pub(crate) fn cancel(&self, fiber: NonNull<FiberControl>) {
        // SAFETY: callers hold a JoinHandle or walk the unfinished list, both
        // of which keep the block valid.
        let control = unsafe { fiber.as_ref() };
        if !control.is_finished() {
            control.cancelled.set(true);
            self.sched.wake(fiber);
        }
    }

    /// Copies the gauges readers on other threads cannot compute — queue
    /// lengths, timers, stacks — into the loop's counters: every few turns
    /// (`drive.rs`), before parking, and before a fiber of this loop reads
    /// the metrics.
    pub(crate) fn publish_gauges(&self) {
        let stats = self.sched.stats();
        stats.live.set(self.sched.unfinished_count() as u64);
        stats.spawned.set(self.next_fiber_id.get() - 1);
        stats.runnable.set(self.sched.runnable_count() as u64);
        stats.timers.set(self.timers.len() as u64);
        stats.stacks_in_use.set(self.pool.in_use() as u64);
        stats.stacks_reserved.set(self.pool.capacity() as u64);
        stats.stack_limit.set(self.pool.limit() as u64);
        stats
            .stack_budget
            .set(self.pool.budget().map_or(u64::MAX, |b| b as u64));
        crate::profiling::plot_loop(self.index, stats);
    }

    // ---- time -------------------------------------------------------------

    fn tick_at_or_after(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.start).as_nanos();
        u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    fn tick_at_or_before(&self, now: Instant) -> u64 {
        let millis = now.saturating_duration_since(self.start).as_millis();
        u64::try_from(millis).unwrap_or(u64::MAX)
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.start
            .checked_add(Duration::from_millis(tick))
            .unwrap_or_else(|| self.start + Duration::from_secs(u32::MAX as u64))
    }
}
