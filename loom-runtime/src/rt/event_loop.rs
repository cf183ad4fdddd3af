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
use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::context;
use crate::driver::remote::{Envelope, Open, Remote};
use crate::driver::{Driver, Wait};

use corosensei::Yielder;
use corosensei::stack::STACK_ALIGNMENT;

use crate::fiber::control::{CONTROL_BYTES, FiberControl, FiberName};
use crate::fiber::stack::{PooledStack, StackPool, StackSlot};
use crate::list::{Link, List, container_of};
use crate::sched::{Resumed, Scheduler};
use crate::sys::{cancelled, page_size};
use crate::time::wheel::{TimerEntry, TimerWheel};

/// Fibers resumed per loop turn before timers are looked at again, so a
/// crowd of yielding fibers cannot starve timers — and so the loop reads
/// the clock once per batch rather than once per switch.
pub(crate) const RUN_BUDGET: usize = 64;

/// Stack a fiber keeps below its result slot, at the least.
const MIN_FRAME_BYTES: usize = 8 * 1024;

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
}

/// Calls `f` with the loop running on this thread.
///
/// # Panics
/// Outside a loom runtime, with a message naming `what`.
#[inline]
#[track_caller]
pub(crate) fn with_current<R>(what: &str, f: impl FnOnce(&EventLoop) -> R) -> R {
    let current = current_ptr(what);
    // SAFETY: the context holds a loop only between LoopGuard::enter and
    // its drop, while `Runtime::run` holds the Rc<EventLoop> it points into.
    f(unsafe { &*current })
}

/// A counted reference to the loop running on this thread.
///
/// # Panics
/// Outside a loom runtime, with a message naming `what`.
#[track_caller]
pub(crate) fn current_rc(what: &str) -> Rc<EventLoop> {
    let current = current_ptr(what);
    // SAFETY: the context's loop came from `Rc::as_ptr` on an Rc that
    // `Runtime::run` keeps alive while it is installed, so adding a strong
    // count is sound.
    unsafe {
        Rc::increment_strong_count(current);
        Rc::from_raw(current)
    }
}

#[inline]
#[track_caller]
fn current_ptr(what: &str) -> *const EventLoop {
    let current = context::event_loop().cast::<EventLoop>();
    if current.is_null() {
        not_in_runtime(what);
    }
    current
}

#[cold]
#[track_caller]
fn not_in_runtime(what: &str) -> ! {
    panic!(
        "loom: {what} must be called from a fiber inside a loom runtime \
         (start one with loom::Runtime::builder().build()?.run(..) or #[loom::main])"
    );
}

/// Calls `f` with the loop running on this thread, if there is one.
#[inline]
pub(crate) fn try_with_current<R>(f: impl FnOnce(&EventLoop) -> R) -> Option<R> {
    let current = context::event_loop().cast::<EventLoop>();
    // SAFETY: as in `with_current`.
    (!current.is_null()).then(|| f(unsafe { &*current }))
}

/// Whether this thread is inside a loom runtime.
pub(crate) fn in_runtime() -> bool {
    context::in_loop()
}

/// Makes `event_loop` the current loop of this thread until dropped.
#[derive(Debug)]
pub(crate) struct LoopGuard {
    _installed: context::Installed,
}

impl LoopGuard {
    pub(crate) fn enter(event_loop: &Rc<EventLoop>) -> LoopGuard {
        // SAFETY: the loop and its scheduler live in the Rc, which
        // `run_loop` keeps until after this guard is dropped, on this
        // thread.
        let installed = unsafe {
            context::install(
                Rc::as_ptr(event_loop).cast(),
                event_loop.sched.running_slot(),
            )
        };
        LoopGuard {
            _installed: installed,
        }
    }
}

/// A fiber [`EventLoop::spawn`] just started, returning `T`: the one
/// permission to make its `JoinHandle` (`JoinHandle::new`), which detaches
/// the fiber when dropped so that its stack can return to the pool.
#[must_use = "make the fiber's JoinHandle, or its stack is never released"]
#[derive(Debug)]
pub(crate) struct Spawned<T> {
    pub(crate) fiber: NonNull<FiberControl>,
    _result: PhantomData<fn() -> T>,
}

/// A fiber waiting for a stack permit; lives in the waiter's frame.
struct StackWaiter {
    link: Link,
    fiber: NonNull<FiberControl>,
    granted: Cell<bool>,
}

impl EventLoop {
    pub(crate) fn new(
        pool: StackPool,
        driver: Driver,
        config: LoopConfig,
        index: usize,
        shared: Arc<RuntimeShared>,
    ) -> EventLoop {
        EventLoop {
            sched: Scheduler::new(),
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
        }
    }

    /// The running fiber's control block.
    #[track_caller]
    pub(crate) fn current_fiber(&self, what: &str) -> &FiberControl {
        match self.sched.current() {
            // SAFETY: the running fiber's block is valid while it runs, and
            // the returned borrow is tied to `self`, which outlives it.
            Some(fiber) => unsafe { fiber.as_ref() },
            None => panic!("loom: {what} must be called from a fiber"),
        }
    }

    // ---- spawning -------------------------------------------------------

    /// Spawns `f` as a fiber of this loop. May suspend the calling fiber
    /// while `max_fibers` stacks are in use. The caller turns the result
    /// into the fiber's one `JoinHandle`.
    #[inline]
    pub(crate) fn spawn<F, T>(
        &self,
        name: FiberName,
        stack_bytes: Option<usize>,
        f: F,
    ) -> io::Result<Spawned<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let stack_bytes = stack_bytes.unwrap_or(self.config.stack_bytes);
        let layout = ResultLayout::of::<T>(stack_bytes)?;
        let slot = self.acquire_stack(stack_bytes)?;
        let id = self.next_fiber_id.get();
        self.next_fiber_id.set(id + 1);
        // SAFETY: `slot` was just taken from the pool, so nothing else uses
        // its memory; `layout` was computed for its size.
        let fiber = unsafe { init_fiber(slot, layout, id, name, f) };
        // SAFETY: init_fiber returned an initialised block that stays valid
        // until `release_fiber` (after the fiber finished).
        unsafe {
            fiber.as_ref().cancelled.set(self.cancel_new.get());
            // The slot's fiber-track name, made when the slot was reserved.
            #[cfg(any(feature = "tracy-fibers", test))]
            fiber
                .as_ref()
                .profile
                .set_track(self.pool.track_name(&slot));
            self.sched.admit(fiber);
        }
        Ok(Spawned {
            fiber,
            _result: PhantomData,
        })
    }

    /// Takes a stack permit and a slot of `stack_bytes`, waiting while the
    /// pool's limit of stacks is in use.
    #[inline]
    fn acquire_stack(&self, stack_bytes: usize) -> io::Result<StackSlot> {
        self.acquire_permit()?;
        match self.pool.take_slot(stack_bytes) {
            Ok(slot) => Ok(slot),
            Err(e) => self.retry_stack(stack_bytes, e),
        }
    }

    /// After `take_slot` failed with `e` under a permit: gives the permit
    /// back and, if the budget just shrank under this spawn, waits for a
    /// stack like any spawn at the limit.
    #[cold]
    #[inline(never)]
    fn retry_stack(&self, stack_bytes: usize, mut e: io::Error) -> io::Result<StackSlot> {
        loop {
            // Over the limit only if the kernel refused a mapping the budget
            // counted on and the budget shrank to the stacks reserved, all in
            // use: then the permit is not handed on, and this spawn waits
            // (outside a fiber, acquire_permit reports WouldBlock).
            let over_limit = !self.pool.may_hand_on_permit();
            self.release_permit();
            if !over_limit || self.pool.capacity() == 0 {
                return Err(e);
            }
            self.acquire_permit()?;
            match self.pool.take_slot(stack_bytes) {
                Ok(slot) => return Ok(slot),
                Err(again) => e = again,
            }
        }
    }

    /// Takes a stack permit, waiting in FIFO order while the pool's limit
    /// of stacks is in use (back-pressure for accept loops).
    #[inline]
    fn acquire_permit(&self) -> io::Result<()> {
        if self.pool.try_take_permit() {
            return Ok(());
        }
        self.wait_for_permit()
    }

    #[cold]
    #[inline(never)]
    fn wait_for_permit(&self) -> io::Result<()> {
        let Some(me) = self.sched.current() else {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "max_fibers stacks are in use and the caller is not a fiber that could wait",
            ));
        };
        // SAFETY: the running fiber's block is valid while it runs.
        let is_cancelled = || unsafe { me.as_ref() }.cancelled.get();
        if is_cancelled() {
            return Err(self.refuse_cancelled());
        }
        let waiter = StackWaiter {
            link: Link::new(),
            fiber: me,
            granted: Cell::new(false),
        };
        // SAFETY: `waiter` stays in this frame until it is unlinked: either
        // release_permit pops it (granted) or we remove it below.
        unsafe { self.stack_waiters.push_back(&waiter.link) };
        loop {
            self.sched.suspend();
            // Cancellation wins over a permit granted in the same turn: the
            // permit moves on to the next waiter.
            if is_cancelled() {
                if waiter.granted.get() {
                    self.release_permit();
                } else {
                    // SAFETY: not granted, so still in `stack_waiters`.
                    unsafe { self.stack_waiters.remove(&waiter.link) };
                }
                return Err(cancelled());
            }
            if waiter.granted.get() {
                return Ok(());
            }
        }
    }

    /// Returns a permit, handing it straight to the oldest waiter if any
    /// (unless more permits are out than a shrunken budget allows).
    fn release_permit(&self) {
        if !self.pool.may_hand_on_permit() {
            self.pool.return_permit();
            return;
        }
        let link = self.stack_waiters.pop_front();
        if link.is_null() {
            self.pool.return_permit();
            return;
        }
        // SAFETY: only StackWaiter links are put in `stack_waiters`, and a
        // waiter stays in its frame while linked.
        let waiter = unsafe { &*container_of!(link, StackWaiter, link) };
        waiter.granted.set(true);
        self.sched.wake(waiter.fiber);
    }

    /// Gives a finished fiber's stack back to the pool.
    ///
    /// # Safety
    /// The fiber has finished, and its result has been moved out or dropped.
    pub(crate) unsafe fn release_fiber(&self, fiber: NonNull<FiberControl>) {
        // SAFETY: a finished, not yet released fiber's block is valid.
        let control = unsafe { fiber.as_ref() };
        control.retire();
        let slot = control.slot;
        // SAFETY: the fiber is finished and its result gone (contract), so
        // nothing uses the slot's memory any more.
        unsafe { self.pool.put_slot(slot) };
        self.release_permit();
    }

    // ---- blocking calls -------------------------------------------------

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

    /// The number of loops in this loop's runtime.
    pub(crate) fn loop_count(&self) -> usize {
        self.shared.remotes.len()
    }

    /// Keeps a spawn message from another loop, opened once but not
    /// consumed, until a stack permit is free; [`EventLoop::spawn_deferred`]
    /// opens it again.
    pub(crate) fn defer_spawn(&self, spawn: NonNull<Envelope>) {
        self.deferred_spawns.borrow_mut().push_back(spawn);
    }

    /// Whether a spawn would get a stack permit without waiting.
    pub(crate) fn has_stack_permit(&self) -> bool {
        self.pool.has_permit()
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

    // ---- the loop ---------------------------------------------------------

    /// Runs fibers until shutdown — `main` finished (loop 0), or loop 0
    /// asked for it (the others) — and every fiber has finished too, or the
    /// shutdown grace period ran out.
    pub(crate) fn drive(&self, main: Option<NonNull<FiberControl>>) {
        loop {
            self.run_batch();
            if self.driver.remote().has_messages() {
                self.driver.remote().drain(&self.sched);
            }
            self.spawn_deferred();
            if self.shutdown_deadline.get().is_none()
                // SAFETY: the runtime's JoinHandle keeps main's block valid.
                && main.is_some_and(|main| unsafe { main.as_ref() }.is_finished())
            {
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

    fn run_batch(&self) {
        for _ in 0..RUN_BUDGET {
            let Some(fiber) = self.sched.next_runnable() else {
                return;
            };
            // SAFETY: taken off the run queue just now, so admitted,
            // runnable and unfinished.
            if unsafe { self.sched.resume(fiber) } == Resumed::Returned {
                self.on_fiber_returned(fiber);
            }
        }
    }

    fn on_fiber_returned(&self, fiber: NonNull<FiberControl>) {
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

    fn fire_due_timers(&self) {
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
    fn wake_up_possible(&self) -> bool {
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
    fn idle(&self) -> bool {
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
    fn spin_for_mail(&self, wake_at: Option<Instant>) -> bool {
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

    fn recover_from_deadlock(&self) -> bool {
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

    /// Starts this loop's shutdown: cancels every fiber (and those spawned
    /// from now on), which then get the shutdown timeout to finish.
    pub(crate) fn begin_shutdown(&self) {
        if self.shutdown_deadline.get().is_some() {
            return;
        }
        self.shutdown_deadline
            .set(Some(Instant::now() + self.config.shutdown_timeout));
        if self.sched.unfinished_count() > 0 {
            log::debug!(
                "main fiber finished; cancelling {} fibers",
                self.sched.unfinished_count()
            );
        }
        self.cancel_all();
    }

    fn cancel_all(&self) {
        self.cancel_new.set(true);
        self.sched.for_each_unfinished(|fiber| self.cancel(fiber));
    }

    /// Gives up on fibers that ignored cancellation. Their stacks stay
    /// mapped forever: freeing them would need unwinding a suspended
    /// coroutine, which `panic = "abort"` cannot do and which would run
    /// user code at an arbitrary point.
    pub(crate) fn abandon_unfinished(&self) {
        if self.sched.unfinished_count() > 0 {
            // A wake-up for an abandoned fiber may still be on its way from
            // another thread; its mailbox must outlive the runtime.
            std::mem::forget(Arc::clone(self.driver.remote()));
        }
        self.sched.for_each_unfinished(|fiber| {
            // SAFETY: unfinished fibers' blocks are valid.
            let control = unsafe { fiber.as_ref() };
            log::warn!(
                "loom: fiber {:?} (#{}) did not finish after being cancelled; leaking its {} KiB stack",
                control.name,
                control.id,
                control.slot.stack_bytes() / 1024
            );
            self.pool.leak_slot(&control.slot);
        });
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

/// Where a fiber returning `T` keeps its result and where its usable stack
/// begins, as distances below the slot's (page-aligned) top. The one place
/// that decides the layout drawn in `fiber/control.rs`.
#[derive(Clone, Copy, Debug)]
struct ResultLayout {
    result_below_top: usize,
    base_below_top: usize,
}

impl ResultLayout {
    /// Lays out `thread::Result<T>` under the control block, refusing types
    /// that would leave less than `MIN_FRAME_BYTES` of the stack to run on.
    fn of<T>(stack_bytes: usize) -> io::Result<ResultLayout> {
        let size = size_of::<thread::Result<T>>();
        let align = align_of::<thread::Result<T>>();
        // Offsets from a page-aligned top keep their alignment only for
        // alignments up to a page.
        let result_below_top = if align <= page_size() {
            Some(crate::sys::round_up(CONTROL_BYTES + size, align))
        } else {
            None
        };
        let layout = result_below_top.map(|result_below_top| ResultLayout {
            result_below_top,
            base_below_top: crate::sys::round_up(result_below_top, STACK_ALIGNMENT),
        });
        match layout {
            Some(layout) if layout.base_below_top + MIN_FRAME_BYTES <= stack_bytes => Ok(layout),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a fiber's return value of {} bytes (alignment {align}) does not fit its {} KiB \
                     stack with {} KiB to spare; return a Box or use a larger stack_size",
                    size_of::<T>(),
                    stack_bytes / 1024,
                    MIN_FRAME_BYTES / 1024
                ),
            )),
        }
    }
}

/// Writes the control block and the coroutine into `slot`.
///
/// # Safety
/// Nothing else uses `slot`'s memory, and `layout` is
/// `ResultLayout::of::<T>` for the slot's stack size.
unsafe fn init_fiber<F, T>(
    slot: StackSlot,
    layout: ResultLayout,
    id: u64,
    name: FiberName,
    f: F,
) -> NonNull<FiberControl>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let control_addr = slot.top - CONTROL_BYTES;
    let result_addr = slot.top - layout.result_below_top;
    let base = slot.top - layout.base_below_top;
    debug_assert!(base >= slot.guard + page_size() + MIN_FRAME_BYTES);
    let control = control_addr as *mut FiberControl;
    // SAFETY: the slot's top CONTROL_BYTES are ours (contract) and
    // page-aligned top minus a multiple of 64 satisfies the block's alignment.
    unsafe { control.write(FiberControl::new(slot, result_addr as *mut u8, id, name)) };
    let entry_control = control.cast_const();
    let body = move |yielder: &Yielder<(), ()>, ()| {
        // SAFETY: the block outlives the coroutine running on its stack.
        unsafe { fiber_entry::<F, T>(&*entry_control, yielder, f) }
    };
    let coroutine = corosensei::Coroutine::with_stack(PooledStack::new(&slot, base), body);
    // SAFETY: `control` was initialised above; nothing else references it yet.
    unsafe {
        (*control)
            .coroutine
            .get()
            .write(MaybeUninit::new(coroutine));
        NonNull::new_unchecked(control)
    }
}

/// The first frame of every fiber.
///
/// # Safety
/// `control` is this fiber's block and `control.result` points to space for
/// a `thread::Result<T>` in the same slot.
unsafe fn fiber_entry<F, T>(control: &FiberControl, yielder: &Yielder<(), ()>, f: F)
where
    F: FnOnce() -> T,
{
    control.yielder.set(yielder);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    if control.detached.get() {
        // Nobody will look at it; drop it here, on the fiber's own stack,
        // where a panicking destructor harms no one else.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(outcome))) {
            std::mem::forget(payload);
        }
    } else {
        // SAFETY: `result` is reserved for exactly this type (contract) and
        // is written once, here.
        unsafe { control.result.cast::<thread::Result<T>>().write(outcome) };
    }
}

// ---- the loop's own messages ---------------------------------------------

impl EventLoop {
    /// Retries spawns deferred for lack of stack permits, oldest first.
    pub(crate) fn spawn_deferred(&self) {
        while self.has_stack_permit() {
            let Some(envelope) = self.deferred_spawns.borrow_mut().pop_front() else {
                return;
            };
            // SAFETY: deferred messages were opened once and set aside
            // unconsumed; opening again continues where that left off.
            unsafe { (envelope.as_ref().open())(envelope, Some(&self.sched)) };
        }
    }

    /// Disposes of deferred spawns when the loop stops.
    pub(crate) fn drop_deferred_spawns(&self) {
        while let Some(envelope) = self.deferred_spawns.borrow_mut().pop_front() {
            // SAFETY: as above; `None` disposes of the message.
            unsafe { (envelope.as_ref().open())(envelope, None) };
        }
    }

    /// Tells every other loop to shut down (loop 0, once main returned).
    pub(crate) fn shut_down_other_loops(&self) {
        for (index, remote) in self.shared.remotes.iter().enumerate() {
            if index != self.index {
                send_boxed(remote, ShutDown::open);
            }
        }
    }
}

/// Runs `f` with the loop a message is opened on: the thread's current
/// loop when the mailbox hands over its scheduler, `None` when the loop
/// stopped before the message was read.
pub(crate) fn opened_on<R>(
    sched: Option<&Scheduler>,
    f: impl FnOnce(Option<&EventLoop>) -> R,
) -> R {
    match sched {
        Some(_) => with_current("a loop's mailbox", |lp| f(Some(lp))),
        None => f(None),
    }
}

/// Sends a message with no content but its envelope.
fn send_boxed(remote: &Remote, open: Open) {
    let envelope = NonNull::from(Box::leak(Box::new(Envelope::new(open))));
    // SAFETY: leaked for the mailbox, which owns it until opened.
    if unsafe { remote.send(envelope) }.is_err() {
        // SAFETY: refused, so still ours.
        drop(unsafe { Box::from_raw(envelope.as_ptr()) });
    }
}

/// Asks a loop to begin its shutdown.
struct ShutDown;

impl ShutDown {
    /// # Safety
    /// `envelope` is a leaked `Box<Envelope>`, opened once.
    unsafe fn open(envelope: NonNull<Envelope>, sched: Option<&Scheduler>) {
        // SAFETY: forwarded contract.
        opened_on(sched, |lp| unsafe { Self::open_on(envelope, lp) });
    }

    /// [`ShutDown::open`] on the loop (`None`: it stopped).
    ///
    /// # Safety
    /// As for `open`.
    unsafe fn open_on(envelope: NonNull<Envelope>, lp: Option<&EventLoop>) {
        // SAFETY: contract.
        drop(unsafe { Box::from_raw(envelope.as_ptr()) });
        if let Some(lp) = lp {
            lp.begin_shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(align(256))]
    struct Aligned {
        _bytes: [u8; 300],
    }

    #[test]
    fn result_layout_is_aligned_and_clear_of_the_control_block() {
        fn check<T>() {
            let top = 64 * 1024 * 4; // any page-aligned address will do
            let layout = ResultLayout::of::<T>(64 * 1024).unwrap();
            let result = top - layout.result_below_top;
            assert_eq!(result % align_of::<thread::Result<T>>(), 0);
            assert!(result + size_of::<thread::Result<T>>() <= top - CONTROL_BYTES);
            assert_eq!((top - layout.base_below_top) % STACK_ALIGNMENT, 0);
            assert!(layout.base_below_top >= layout.result_below_top);
        }
        check::<()>();
        check::<u8>();
        check::<u128>();
        check::<Aligned>();
        check::<String>();
    }

    #[test]
    fn result_layout_refuses_results_that_leave_too_little_stack() {
        assert!(ResultLayout::of::<[u8; 4096]>(16 * 1024).is_ok());
        let err = ResultLayout::of::<[u8; 12 * 1024]>(16 * 1024).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
