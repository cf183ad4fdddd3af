//! The loop running on this thread, as the modules above `rt` reach it:
//! [`with_current`] and its variants, the running fiber and its call-tree
//! deadline, and [`run_op`], which runs an op on the calling fiber — the
//! loop's own checks (a cancelled fiber, the fiber's deadline), then the
//! loop's driver,
//! which keeps the op alive until the kernel is done with it (`Driver::run`
//! and the backend files under `driver/`). Only this file hands the event
//! loop to the driver, as its [`Host`].
//!
//! The loop is found through `context` (one thread-local load); the
//! [`LoopGuard`] that `run_loop` holds installs it there.

use std::io;
use std::rc::Rc;
use std::thread;
use std::time::Instant;

use super::event_loop::EventLoop;
use crate::context;
use crate::driver::Host;
use crate::driver::poll::SourceKey;
use crate::op::{Deadline, Op};
use crate::sched::Scheduler;
use crate::stack::control::FiberControl;
use crate::wheel::TimerEntry;

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

impl EventLoop {
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
}

/// Runs `op` to completion on the current fiber; `source` is the socket's
/// poll registration (ignored on io_uring). `deadline` is the op's own
/// (a socket timeout); the fiber's call-tree deadline bounds it too, and
/// whichever is earlier decides when the op gives up and with which error.
///
/// # Errors
/// The op's own error; the cancellation error if the fiber is (or gets)
/// cancelled before the op completed; the earlier deadline's error
/// (`ETIMEDOUT` for the fiber's) if it passes first.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
#[inline]
pub(crate) fn run_op<O: Op>(
    what: &str,
    op: O,
    source: Option<SourceKey>,
    deadline: Option<Deadline>,
) -> io::Result<O::Output> {
    run(what, op, source, deadline, true)
}

/// [`run_op`] for an op the fiber's deadline must not cut short: a close,
/// which the kernel may queue behind a flush, and which a cancel would
/// then leave undone with the fd already given up.
#[track_caller]
pub(crate) fn run_op_to_end<O: Op>(what: &str, op: O) -> io::Result<O::Output> {
    run(what, op, None, None, false)
}

#[track_caller]
#[inline]
fn run<O: Op>(
    what: &str,
    mut op: O,
    source: Option<SourceKey>,
    deadline: Option<Deadline>,
    bounded: bool,
) -> io::Result<O::Output> {
    let result = with_current(what, |lp| {
        let me = lp.current_fiber(what);
        if me.cancelled.get() {
            return Err(lp.refuse_cancelled());
        }
        let deadline = match me.deadline.get() {
            Some(at) if bounded => earlier(deadline, at),
            _ => deadline,
        };
        let stats = lp.sched.stats();
        stats.ops_started.incr();
        let result = lp.driver.run(lp, &mut op, source, deadline);
        stats.ops_ended.incr();
        result
    });
    op.complete(result)
}

/// The earlier of an op's own deadline and the fiber's (`at`, which fails
/// with `ETIMEDOUT`); a tie keeps the op's own.
#[inline]
fn earlier(own: Option<Deadline>, at: Instant) -> Option<Deadline> {
    match own {
        Some(own) if own.at <= at => Some(own),
        _ => Some(Deadline {
            at,
            errno: libc::ETIMEDOUT,
        }),
    }
}

/// The call-tree deadline in force on the running fiber: `None` outside a
/// fiber or without one.
#[inline]
pub(crate) fn fiber_deadline() -> Option<Instant> {
    try_with_current(|lp| {
        let me = lp.sched.current()?;
        // SAFETY: the running fiber's block is valid while it runs.
        unsafe { me.as_ref() }.deadline.get()
    })
    .flatten()
}

/// Sets the running fiber's call-tree deadline to `update(current)`;
/// returns the one it replaces.
///
/// # Panics
/// Outside a fiber, with a message naming `what`.
#[track_caller]
pub(crate) fn update_fiber_deadline(
    what: &str,
    update: impl FnOnce(Option<Instant>) -> Option<Instant>,
) -> Option<Instant> {
    with_current(what, |lp| {
        let deadline = &lp.current_fiber(what).deadline;
        let old = deadline.get();
        deadline.set(update(old));
        old
    })
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
