//! A loop's counters: written by the loop's own thread, readable from any
//! thread (`loom::rt::metrics`, the stall monitor).
//!
//! Every field has one writer — the loop's thread — so an update is a
//! relaxed load and a relaxed store, which compile to plain moves: no
//! locked read-modify-write on the data path. A reader on another thread
//! sees each value as it was at some recent moment, not a snapshot of all
//! of them at one instant. The exceptions (`stalls`, `watch`) are written
//! by the stall monitor and say so.

use std::sync::Mutex;
use std::sync::atomic::{
    AtomicPtr, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// A number only the loop's thread changes.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// Sets the value; only from the owning loop's thread.
    #[inline(always)]
    pub(crate) fn set(&self, value: u64) {
        self.0.store(value, Relaxed);
    }

    /// Adds `n`; only from the owning loop's thread, so not an atomic
    /// read-modify-write.
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.set(self.get().wrapping_add(n));
    }

    #[inline(always)]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    #[inline(always)]
    pub(crate) fn decr(&self) {
        self.set(self.get().wrapping_sub(1));
    }
}

/// The fiber a loop is running (null in loop code): the scheduler's own
/// record, read on every op, and what the stall monitor names. A fiber's
/// control block, type-erased (this layer is below the fiber core).
#[derive(Debug, Default)]
pub(crate) struct RunningSlot(AtomicPtr<()>);

impl RunningSlot {
    #[inline(always)]
    pub(crate) fn get(&self) -> *mut () {
        self.0.load(Relaxed)
    }

    /// For the monitor: pairs with [`RunningSlot::enter`]'s `Release`.
    pub(crate) fn get_acquire(&self) -> *mut () {
        self.0.load(Acquire)
    }

    /// The loop starts running `fiber`. `Release` (a plain store on x86-64)
    /// orders the fiber's identity, written at spawn, before it for the
    /// monitor.
    #[inline(always)]
    pub(crate) fn enter(&self, fiber: *mut ()) {
        self.0.store(fiber, Release);
    }

    #[inline(always)]
    pub(crate) fn leave(&self) {
        self.0.store(std::ptr::null_mut(), Relaxed);
    }
}

/// Why a suspended fiber waits: what `Scheduler::suspend` is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitKind {
    /// An op in the I/O driver.
    Io,
    /// A sleep.
    Timer,
    /// A `loom::sync` primitive or channel.
    Sync,
    /// Another fiber's end: `join`, a scope's wait.
    Join,
    /// A job on the blocking pool.
    Blocking,
    /// A free stack (spawning at the pool's limit).
    Stack,
    /// A future polled by `block_on`.
    Future,
}

impl WaitKind {
    pub(crate) const COUNT: usize = 7;
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct LoopStats {
    /// Fibers resumed so far; the stall monitor watches it move.
    pub(crate) switches: Counter,
    /// The fiber running now (see `stack::control::SlotIdent` for what the
    /// monitor reads of it).
    pub(crate) running: RunningSlot,
    /// Suspended fibers, by [`WaitKind`].
    pub(crate) waiting: [Counter; WaitKind::COUNT],
    pub(crate) ops_started: Counter,
    pub(crate) ops_ended: Counter,
    /// Ops given up on: cancellation or a passed deadline.
    pub(crate) ops_cancelled: Counter,
    /// Calls into the kernel to submit or wait: `io_uring_enter`,
    /// `epoll_wait`, `kevent`.
    pub(crate) driver_waits: Counter,
    /// Completions (io_uring) or readiness events (epoll, kqueue) reaped.
    pub(crate) driver_events: Counter,
    pub(crate) mail_received: Counter,
    // Gauges the loop copies in (`EventLoop::publish_gauges`): every 64
    // busy turns, before it parks, and when one of its fibers asks.
    pub(crate) live: Counter,
    /// Fibers spawned so far (ids are handed out in order, so this costs a
    /// spawn nothing); finished ones are `spawned - live`.
    pub(crate) spawned: Counter,
    pub(crate) runnable: Counter,
    pub(crate) timers: Counter,
    pub(crate) stacks_in_use: Counter,
    pub(crate) stacks_reserved: Counter,
    pub(crate) stack_limit: Counter,
    /// `u64::MAX`: no mapping budget.
    pub(crate) stack_budget: Counter,
    /// Stalls the monitor reported (written by the monitor, `fetch_add`).
    pub(crate) stalls: AtomicU64,
    /// `true` once the loop stopped: its stack memory may be unmapped. The
    /// monitor holds this lock while it reads a running fiber's identity;
    /// the loop takes it to set the flag, before its stacks go.
    pub(crate) closed: Mutex<bool>,
}

impl LoopStats {
    pub(crate) fn waiting(&self, kind: WaitKind) -> &Counter {
        &self.waiting[kind as usize]
    }
}
