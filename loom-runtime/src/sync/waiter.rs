//! Waiting on a primitive: the waiter a blocked fiber (or thread) leaves in
//! a primitive's wait list, how it is woken, and the one wait loop every
//! primitive uses.
//!
//! The model is a futex's: a waiter sleeps until *notified*, then re-checks
//! the primitive's state. A notifier unlinks waiters while it holds the
//! primitive's lock and marks them notified, and delivers the wake-ups
//! after releasing it:
//!
//! - to a fiber of the notifier's own loop, directly (`Scheduler::wake`);
//! - to a fiber of another loop, as a message in that loop's mailbox — the
//!   waiter's [`FiberWake`] is the message, so nothing is allocated;
//! - to a plain thread, by `Thread::unpark`.
//!
//! A waiter stays in its frame until it is either unlinked by itself (it
//! was not notified) or notified *and* delivered: the notifier may still
//! touch it in between (invariant 1, docs/ARCHITECTURE.md, applied to wake-ups).
//! A waiter interrupted (cancelled, timed out) after it was notified passes
//! the notification on to the next waiter, so none is lost.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, Thread};
use std::time::Instant;

use super::flavour::RawLock;
use crate::driver::remote::{FiberWake, Remote};
use crate::list::{Link, List, container_of};
use crate::rt::current;
use crate::rt::event_loop::EventLoop;
use crate::stack::control::FiberControl;
use crate::stats::WaitKind;
use crate::wheel::TimerEntry;

/// Why a wait ended without being notified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupted {
    /// The fiber was cancelled (`ECANCELED`).
    Cancelled,
    /// The deadline passed.
    TimedOut,
}

impl Interrupted {
    /// The error a blocking call reports for this interruption.
    pub(crate) fn into_io_error(self) -> std::io::Error {
        match self {
            Interrupted::Cancelled => crate::sys::cancelled(),
            Interrupted::TimedOut => std::io::ErrorKind::TimedOut.into(),
        }
    }
}

enum Who {
    Fiber {
        wake: FiberWake,
        /// The fiber's loop's remote end; kept alive by the loop while the
        /// fiber waits (and leaked if the loop abandons the fiber).
        remote: *const Remote,
    },
    Thread {
        thread: Thread,
        woken: AtomicBool,
    },
}

/// A fiber or thread waiting on a primitive. Lives in the waiter's frame.
pub(crate) struct Waiter {
    link: Link,
    /// Set under the primitive's lock by the notifier that unlinked it.
    notified: Cell<bool>,
    /// Waiting on a Shared primitive: another thread may be the one to
    /// wake it, so its loop must not take the wait for a deadlock.
    cross_thread: bool,
    who: Who,
}

impl Waiter {
    /// A waiter for the calling fiber, or — for cross-thread primitives
    /// only — the calling thread outside any runtime.
    ///
    /// # Panics
    /// A local primitive used outside a fiber.
    #[track_caller]
    pub(crate) fn for_current(cross_thread: bool, what: &str) -> Waiter {
        let who = match current::try_with_current(|lp| {
            lp.sched
                .current()
                .map(|fiber| (fiber, Arc::as_ptr(lp.driver.remote())))
        }) {
            Some(Some((fiber, remote))) => Who::Fiber {
                wake: FiberWake::new(fiber),
                remote,
            },
            _ if cross_thread => Who::Thread {
                thread: thread::current(),
                woken: AtomicBool::new(false),
            },
            _ => panic!("loom: {what} on a local primitive must be called from a fiber"),
        };
        Waiter {
            link: Link::new(),
            notified: Cell::new(false),
            cross_thread,
            who,
        }
    }

    /// The fiber behind this waiter, if it is one.
    pub(crate) fn fiber(&self) -> Option<NonNull<FiberControl>> {
        match &self.who {
            Who::Fiber { wake, .. } => Some(wake.fiber()),
            Who::Thread { .. } => None,
        }
    }

    /// Whether the wake-up has reached the waiter (it may leave its frame).
    pub(crate) fn is_delivered(&self) -> bool {
        match &self.who {
            Who::Fiber { wake, .. } => wake.is_delivered(),
            Who::Thread { woken, .. } => woken.load(Ordering::Acquire),
        }
    }

    /// Makes a delivered waiter ready to wait again.
    pub(crate) fn reset(&self) {
        debug_assert!(!self.link.is_linked() && self.is_delivered());
        self.notified.set(false);
        match &self.who {
            Who::Fiber { wake, .. } => wake.reset(),
            Who::Thread { woken, .. } => woken.store(false, Ordering::Relaxed),
        }
    }

    /// Blocks until delivered, cancelled (fibers) or `deadline` (or the
    /// fiber's call-tree deadline, see [`block_until`]).
    pub(crate) fn sleep(&self, deadline: Option<Instant>) -> Result<(), Interrupted> {
        block_until(deadline, self.cross_thread, || self.is_delivered())
    }

    /// Blocks until a notification that raced an interruption is delivered;
    /// ignores cancellation, and is brief (the notifier is mid-delivery).
    pub(crate) fn wait_delivered(&self) {
        match &self.who {
            Who::Fiber { .. } => current::with_current("a wake-up", |lp| {
                // The notifier may be another thread that has not pushed
                // the wake-up yet: the loop must not call this a deadlock.
                if self.cross_thread {
                    lp.remote_wait_started();
                }
                while !self.is_delivered() {
                    lp.sched.suspend(WaitKind::Sync);
                }
                if self.cross_thread {
                    lp.remote_wait_ended();
                }
            }),
            Who::Thread { .. } => {
                while !self.is_delivered() {
                    thread::park();
                }
            }
        }
    }

    /// A cancelled fiber does not start waiting: like every blocking call
    /// it fails — after a yield, so that code retrying the call in a loop
    /// cannot starve the other fibers of its loop.
    pub(crate) fn refuse_if_cancelled(&self) -> Result<(), Interrupted> {
        if let Some(fiber) = self.fiber()
            // SAFETY: the running fiber's block is valid while it runs.
            && unsafe { fiber.as_ref() }.cancelled.get()
        {
            current::with_current("a blocking call", |lp| lp.sched.yield_now());
            return Err(Interrupted::Cancelled);
        }
        Ok(())
    }
}

/// Blocks the calling fiber or thread until `ready()`, cancellation (fibers
/// only) or `deadline` — for a fiber, or its call-tree deadline
/// (`loom::time::with_deadline`) if that is earlier: both are
/// [`Interrupted::TimedOut`]. The caller arranged for something to wake it
/// when `ready()` may have become true; `cross_thread` says whether that
/// may be another thread (so the loop must not call the wait a deadlock).
pub(crate) fn block_until(
    deadline: Option<Instant>,
    cross_thread: bool,
    ready: impl Fn() -> bool,
) -> Result<(), Interrupted> {
    if let Some(result) = current::try_with_current(|lp| {
        lp.sched
            .current()
            .map(|fiber| suspend_until(lp, fiber, deadline, cross_thread, &ready))
    })
    .flatten()
    {
        return result;
    }
    loop {
        if ready() {
            return Ok(());
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(Interrupted::TimedOut);
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}

fn suspend_until(
    lp: &EventLoop,
    fiber: NonNull<FiberControl>,
    deadline: Option<Instant>,
    cross_thread: bool,
    ready: &impl Fn() -> bool,
) -> Result<(), Interrupted> {
    // SAFETY: the running fiber's block is valid while it runs.
    let me = unsafe { fiber.as_ref() };
    // The call's own limit and the fiber's call-tree deadline end the wait
    // alike, so the earlier of the two is the one armed.
    let deadline = match (deadline, me.deadline.get()) {
        (Some(own), Some(tree)) => Some(own.min(tree)),
        (own, tree) => own.or(tree),
    };
    let timer = TimerEntry::new(Some(fiber));
    if let Some(deadline) = deadline
        && !ready()
        && !lp.arm_timer(&timer, deadline)
    {
        return Err(Interrupted::TimedOut);
    }
    if cross_thread {
        lp.remote_wait_started();
    }
    let result = loop {
        if ready() {
            break Ok(());
        }
        if me.cancelled.get() {
            break Err(Interrupted::Cancelled);
        }
        if timer.fired() {
            break Err(Interrupted::TimedOut);
        }
        lp.sched.suspend(WaitKind::Sync);
    };
    if cross_thread {
        lp.remote_wait_ended();
    }
    lp.disarm_timer(&timer);
    result
}

/// Before a fiber waits for another thread: spins on its loop's thread
/// until `changed()` holds, mail arrives, `deadline` passes or the loop's
/// spin bound ([`EventLoop::cross_spin_until`]: only while the loop has
/// nothing else to run, and a few microseconds at most) runs out. Returns
/// whether `changed()` held. Outside a fiber it returns `false` at once.
///
/// `changed` reads a hint without taking the primitive's lock, so the
/// waiting side neither registers a waiter nor has the notifier push a
/// wake-up through the mailbox when the change comes quickly — the
/// caller still re-checks under the lock.
pub(crate) fn spin_until(deadline: Option<Instant>, changed: impl Fn() -> bool) -> bool {
    current::try_with_current(|lp| {
        lp.sched.current()?;
        let mut until = lp.cross_spin_until()?;
        if let Some(deadline) = deadline {
            until = until.min(deadline);
        }
        let remote = lp.driver.remote();
        loop {
            for _ in 0..32 {
                if changed() {
                    return Some(true);
                }
                if remote.has_messages() {
                    return Some(false);
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return Some(false);
            }
        }
    })
    .flatten()
    .unwrap_or(false)
}

/// The waiters of one primitive (or one side of it), oldest first. Lives
/// inside the primitive's lock.
#[derive(Debug)]
pub(crate) struct WaitList {
    list: List,
}

// SAFETY: the list only links waiters while the primitive's lock is held,
// and a linked waiter stays valid until it is unlinked (its own promise); a
// Shared primitive's lock makes every access to the list exclusive.
unsafe impl Send for WaitList {}

impl WaitList {
    pub(crate) const fn new() -> WaitList {
        WaitList { list: List::new() }
    }

    /// Links `waiter` at the back.
    ///
    /// # Safety
    /// `waiter` is in no list and stays in place until [`WaitList::remove`]
    /// took it out again or it was notified and delivered.
    pub(crate) unsafe fn push(&self, waiter: &Waiter) {
        debug_assert!(!waiter.notified.get());
        // SAFETY: forwarded from this function's contract.
        unsafe { self.list.push_back(&waiter.link) };
    }

    /// Unlinks `waiter` if it was not notified. Returns `false` if it was:
    /// then its wake-up is on the way and it must
    /// [`wait_delivered`](Waiter::wait_delivered) before leaving.
    pub(crate) fn remove(&self, waiter: &Waiter) -> bool {
        if waiter.notified.get() {
            return false;
        }
        // SAFETY: not notified, so `waiter` is still linked here (pushed by
        // its owner, who calls this under the same lock).
        unsafe { self.list.remove(&waiter.link) };
        true
    }

    /// Notifies the oldest waiter. Deliver the result after releasing the
    /// primitive's lock.
    #[must_use = "a notification does nothing until delivered"]
    pub(crate) fn notify_one(&self) -> Wakes {
        let wakes = Wakes::new();
        let link = self.list.pop_front();
        if !link.is_null() {
            // SAFETY: only Waiter links are pushed, valid while linked; we
            // are the notifier, so the waiter now stays until delivered.
            unsafe { wakes.take(link) };
        }
        wakes
    }

    /// Notifies every waiter; deliver after releasing the lock.
    #[must_use = "a notification does nothing until delivered"]
    pub(crate) fn notify_all(&self) -> Wakes {
        let wakes = Wakes::new();
        loop {
            let link = self.list.pop_front();
            if link.is_null() {
                return wakes;
            }
            // SAFETY: as in notify_one.
            unsafe { wakes.take(link) };
        }
    }
}

/// Notified waiters whose wake-ups are still to be delivered, after the
/// notifier released the primitive's lock. Dropping it delivers them.
#[derive(Debug)]
pub(crate) struct Wakes {
    list: List,
}

impl Wakes {
    pub(crate) const fn new() -> Wakes {
        Wakes { list: List::new() }
    }

    /// # Safety
    /// `link` is the link of a waiter just unlinked from its wait list.
    unsafe fn take(&self, link: *const Link) {
        // SAFETY: contract.
        let waiter = unsafe { &*container_of!(link, Waiter, link) };
        waiter.notified.set(true);
        // SAFETY: a notified waiter stays in place until delivered, which
        // happens only after it leaves this list (in `deliver`).
        unsafe { self.list.push_back(&waiter.link) };
    }

    /// Adds the notifications of `other`.
    pub(crate) fn append(&self, other: Wakes) {
        loop {
            let link = other.list.pop_front();
            if link.is_null() {
                return;
            }
            // SAFETY: links in a Wakes are notified waiters, valid until
            // delivered, and were just unlinked from `other`.
            unsafe { self.list.push_back(&*link) };
        }
    }

    /// Delivers every wake-up. Call with no primitive lock held.
    pub(crate) fn deliver(self) {
        drop(self);
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        loop {
            let link = self.list.pop_front();
            if link.is_null() {
                return;
            }
            // SAFETY: only notified waiters are linked here; each stays in
            // place until delivered, and is not touched after `deliver_one`.
            unsafe { deliver_one(NonNull::from(&*container_of!(link, Waiter, link))) };
        }
    }
}

/// # Safety
/// `waiter` was notified and not delivered yet; after this call it may be
/// gone.
unsafe fn deliver_one(waiter: NonNull<Waiter>) {
    // SAFETY: a notified waiter stays in place until delivered (contract).
    let waiter_ref = unsafe { waiter.as_ref() };
    match &waiter_ref.who {
        Who::Fiber { wake, remote } => {
            let here = current::try_with_current(|lp| {
                if ptr::eq(Arc::as_ptr(lp.driver.remote()), *remote) {
                    wake.deliver_here(&lp.sched);
                    true
                } else {
                    false
                }
            });
            if here == Some(true) {
                return;
            }
            // The waiter's loop keeps its Remote alive while the fiber waits
            // (still undelivered); our own count keeps it alive past the
            // moment the woken fiber lets its loop stop.
            // SAFETY: `remote` came from Arc::as_ptr and is alive (above).
            let remote = unsafe {
                Arc::increment_strong_count(*remote);
                Arc::from_raw(*remote)
            };
            // SAFETY: the FiberWake is in no mailbox (a waiter is notified
            // once per wait) and stays until opened (invariant above).
            if unsafe { remote.send(wake.envelope()) }.is_err() {
                log::error!("loom: a wake-up reached a loop that had stopped");
            }
        }
        Who::Thread { thread, woken } => {
            let thread = thread.clone();
            woken.store(true, Ordering::Release);
            thread.unpark();
        }
    }
}

/// The wait loop of every primitive: runs `try_take` under `lock` until it
/// succeeds, sleeping on the wait list `list` picks out in between.
///
/// # Errors
/// [`Interrupted`] if the caller is cancelled or `deadline` (or the
/// fiber's call-tree deadline) passes first; a `try_take` that succeeds at
/// once never fails, whatever the time.
pub(crate) fn wait_until<S, L: RawLock<S>, R>(
    lock: &L,
    list: fn(&S) -> &WaitList,
    deadline: Option<Instant>,
    cross_thread: bool,
    what: &str,
    mut try_take: impl FnMut(&mut S) -> Option<R>,
) -> Result<R, Interrupted> {
    if let Some(taken) = lock.with(&mut try_take) {
        return Ok(taken);
    }
    let waiter = Waiter::for_current(cross_thread, what);
    waiter.refuse_if_cancelled()?;
    loop {
        let taken = lock.with(|state| {
            let taken = try_take(state);
            if taken.is_none() {
                // SAFETY: the waiter stays in this frame until removed below
                // or notified and delivered (the loop waits for that).
                unsafe { list(state).push(&waiter) };
            }
            taken
        });
        if let Some(taken) = taken {
            return Ok(taken);
        }
        match waiter.sleep(deadline) {
            Ok(()) => waiter.reset(),
            Err(interrupted) => {
                let passed_on = lock.with(|state| {
                    if list(state).remove(&waiter) {
                        None
                    } else {
                        Some(list(state).notify_one())
                    }
                });
                if let Some(wakes) = passed_on {
                    waiter.wait_delivered();
                    wakes.deliver();
                }
                return Err(interrupted);
            }
        }
    }
}
