//! The per-loop scheduler: an intrusive FIFO run queue, the fiber being
//! run, and the three moves every blocking call is built from — `suspend`,
//! `wake` and `yield_now`.
//!
//! Which functions may switch fibers: only [`Scheduler::suspend`] and
//! [`Scheduler::yield_now`] (called by a fiber) and [`Scheduler::resume`]
//! (called by the loop). Everything else here returns without switching.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::list::{List, container_of};
use crate::stack::control::{FiberControl, FiberState};
use crate::stats::{LoopStats, WaitKind};

/// What happened when the loop resumed a fiber.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resumed {
    /// The fiber suspended or yielded.
    Switched,
    /// The fiber's closure returned (or panicked, caught); it is finished.
    Returned,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Scheduler {
    /// The thread this scheduler's fibers live on (an address unique to
    /// that thread), for the debug checks of invariant 2 (docs/ARCHITECTURE.md).
    #[cfg(debug_assertions)]
    owner: *const u8,
    run_queue: List,
    /// Every fiber that has not finished yet, for cancellation at shutdown.
    unfinished: List,
    /// The loop's counters (`stats.rs`); the scheduler keeps the ones every
    /// switch and suspension moves, and its record of the running fiber is
    /// `stats.running`, where the stall monitor can read it.
    stats: Arc<LoopStats>,
}

impl Scheduler {
    pub(crate) fn new(stats: Arc<LoopStats>) -> Self {
        Scheduler {
            #[cfg(debug_assertions)]
            owner: this_thread(),
            run_queue: List::new(),
            unfinished: List::new(),
            stats,
        }
    }

    /// The loop's counters.
    #[inline]
    pub(crate) fn stats(&self) -> &LoopStats {
        &self.stats
    }

    pub(crate) fn runnable_count(&self) -> usize {
        self.run_queue.len()
    }

    #[inline]
    pub(crate) fn current(&self) -> Option<NonNull<FiberControl>> {
        NonNull::new(self.stats.running.get().cast())
    }

    /// Where the running fiber is recorded, for the thread's context.
    pub(crate) fn running_slot(&self) -> *const crate::context::RunningSlot {
        &self.stats.running
    }

    pub(crate) fn has_runnable(&self) -> bool {
        !self.run_queue.is_empty()
    }

    pub(crate) fn unfinished_count(&self) -> usize {
        self.unfinished.len()
    }

    /// Registers a freshly spawned fiber and queues it.
    ///
    /// # Safety
    /// `fiber` points to an initialised control block that stays valid until
    /// the fiber has finished and [`FiberControl::retire`] was called.
    #[inline]
    pub(crate) unsafe fn admit(&self, fiber: NonNull<FiberControl>) {
        // SAFETY: forwarded from this function's contract.
        let control = unsafe { fiber.as_ref() };
        debug_assert_eq!(control.state.get(), FiberState::Runnable);
        control.home.set((self as *const Scheduler).cast());
        // SAFETY: the links live in the control block, valid as long as they
        // can be linked (this function's contract).
        unsafe {
            self.unfinished.push_back(&control.all_link);
            self.run_queue.push_back(&control.run_link);
        }
    }

    /// Makes a suspended fiber runnable; a no-op for any other state, so
    /// wake-ups from several sources (timer, cancel, join) never queue a
    /// fiber twice.
    pub(crate) fn wake(&self, fiber: NonNull<FiberControl>) {
        self.debug_assert_owner(fiber, "woken");
        // SAFETY: callers only hold pointers to fibers that have not been
        // retired (control blocks of admitted fibers stay valid until then).
        let control = unsafe { fiber.as_ref() };
        if control.state.get() == FiberState::Suspended {
            control.state.set(FiberState::Runnable);
            self.stats.waiting(control.wait_kind.get()).decr();
            // SAFETY: as above; a suspended fiber is in no queue.
            unsafe { self.run_queue.push_back(&control.run_link) };
        }
    }

    /// The running fiber gives up the CPU until something wakes it; `kind`
    /// says what it waits for (counted in the loop's metrics). The caller
    /// re-checks its own condition afterwards: a wake-up may come from
    /// cancellation rather than from what it waited for.
    ///
    /// # Panics
    /// Outside a fiber.
    #[inline]
    pub(crate) fn suspend(&self, kind: WaitKind) {
        let control = self.running("suspend");
        control.state.set(FiberState::Suspended);
        // Counted until `wake` makes the fiber runnable again.
        control.wait_kind.set(kind);
        self.stats.waiting(kind).incr();
        switch_out(control);
    }

    /// The running fiber goes to the back of the run queue.
    #[inline]
    pub(crate) fn yield_now(&self) {
        let control = self.running("yield_now");
        control.state.set(FiberState::Runnable);
        // SAFETY: the running fiber is in no queue and its control block
        // outlives its stay there (it cannot finish while queued).
        unsafe { self.run_queue.push_back(&control.run_link) };
        switch_out(control);
    }

    /// Pops the next runnable fiber, if any.
    pub(crate) fn next_runnable(&self) -> Option<NonNull<FiberControl>> {
        let link = self.run_queue.pop_front();
        if link.is_null() {
            return None;
        }
        NonNull::new(container_of!(link, FiberControl, run_link).cast_mut())
    }

    /// Runs `fiber` until it suspends, yields or returns.
    ///
    /// # Safety
    /// `fiber` was admitted, is runnable and was just taken off the run
    /// queue; it is not finished.
    pub(crate) unsafe fn resume(&self, fiber: NonNull<FiberControl>) -> Resumed {
        // SAFETY: admitted fibers' control blocks are valid until retired.
        let control = unsafe { fiber.as_ref() };
        self.debug_assert_owner(fiber, "resumed");
        debug_assert_eq!(control.state.get(), FiberState::Runnable);
        control.state.set(FiberState::Running);
        // The switch count tells the stall monitor the loop moved on.
        self.stats.switches.incr();
        self.stats.running.enter(fiber.as_ptr().cast());
        // SAFETY: spawn initialised the coroutine; it is moved out only once
        // returned, which it has not (contract). Nothing else references it
        // while the loop resumes it: fiber code touches other fields only.
        let coroutine = unsafe { (*control.coroutine.get()).assume_init_mut() };
        // Profiling (`tracy`): the fiber's zones are begun again (or its
        // track entered) for this run slice, and ended (left) as soon as it
        // is over, so they stay well nested on this thread's track.
        #[cfg(any(feature = "tracy", test))]
        let profiled = crate::profiling::before_resume(control);
        let outcome = coroutine.resume(());
        #[cfg(any(feature = "tracy", test))]
        crate::profiling::after_resume(control, profiled);
        self.stats.running.leave();
        match outcome {
            corosensei::CoroutineResult::Yield(()) => Resumed::Switched,
            corosensei::CoroutineResult::Return(()) => {
                control.state.set(FiberState::Finished);
                // SAFETY: the fiber is in `unfinished` until now.
                unsafe { self.unfinished.remove(&control.all_link) };
                Resumed::Returned
            }
        }
    }

    /// Checks (in debug builds) that `fiber` belongs to this scheduler and
    /// that this is its loop's thread: a fiber is only ever queued and
    /// resumed where it lives.
    #[inline]
    #[track_caller]
    fn debug_assert_owner(&self, fiber: NonNull<FiberControl>, what: &str) {
        #[cfg(debug_assertions)]
        {
            // SAFETY: callers only hold pointers to unretired fibers.
            let home = unsafe { fiber.as_ref() }.home.get();
            assert!(
                std::ptr::eq(home, (self as *const Scheduler).cast()),
                "loom: fiber {fiber:?} {what} by another loop's scheduler"
            );
            assert!(
                std::ptr::eq(self.owner, this_thread()),
                "loom: fiber {fiber:?} {what} off its loop's thread"
            );
        }
        #[cfg(not(debug_assertions))]
        let _ = (fiber, what);
    }

    /// Calls `f` on every unfinished fiber.
    pub(crate) fn for_each_unfinished(&self, mut f: impl FnMut(NonNull<FiberControl>)) {
        self.unfinished.for_each(|link| {
            let control = container_of!(link, FiberControl, all_link).cast_mut();
            f(NonNull::new(control).expect("linked control blocks are not null"));
        });
    }

    #[inline]
    #[track_caller]
    fn running(&self, what: &str) -> &FiberControl {
        let Some(fiber) = self.current() else {
            not_in_fiber(what);
        };
        // SAFETY: the running fiber's control block is valid while it runs.
        unsafe { fiber.as_ref() }
    }
}

/// An address unique to the calling thread while it lives.
#[cfg(debug_assertions)]
fn this_thread() -> *const u8 {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(std::ptr::from_ref)
}

#[cold]
#[track_caller]
fn not_in_fiber(what: &str) -> ! {
    panic!("loom: {what} must be called from a fiber");
}

#[inline(always)]
fn switch_out(control: &FiberControl) {
    let yielder = control.yielder.get();
    assert!(!yielder.is_null(), "a fiber switched out before it started");
    // SAFETY: the yielder lives in corosensei's frame at the base of this
    // fiber's stack for as long as the fiber runs, and we are on that fiber.
    unsafe { (*yielder).suspend(()) };
}
