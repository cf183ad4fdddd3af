//! Spawning on a loop: a stack permit (waiting in FIFO order at the
//! pool's limit), a slot, the fiber's memory laid out in it, and the
//! permit's way back when the fiber is released; spawns deferred from
//! other loops until a permit is free.

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::EventLoop;
use crate::driver::remote::Envelope;
use crate::list::{Link, container_of};
use crate::stack::control::{FiberControl, FiberName};
use crate::stack::layout::{ResultLayout, init_fiber};
use crate::stack::pool::StackSlot;
use crate::stats::WaitKind;
use crate::sys::cancelled;

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
        // SAFETY: `F` and `T` are 'static: they borrow nothing that could go
        // away while the fiber runs.
        unsafe { self.spawn_unchecked(name, stack_bytes, f) }
    }

    /// [`EventLoop::spawn`] without the `'static` bounds: the variant
    /// behind `loom::fiber::scope`, whose fibers borrow from the scope's
    /// caller.
    ///
    /// # Safety
    /// Whatever `f` and `T` borrow stays valid until the fiber has
    /// finished, or for ever if it never does (`init_fiber`'s contract;
    /// an abandoned fiber's stack is leaked, never reused).
    #[inline]
    pub(crate) unsafe fn spawn_unchecked<F, T>(
        &self,
        name: FiberName,
        stack_bytes: Option<usize>,
        f: F,
    ) -> io::Result<Spawned<T>>
    where
        F: FnOnce() -> T,
    {
        let stack_bytes = stack_bytes.unwrap_or(self.config.stack_bytes);
        let layout = ResultLayout::of::<T>(stack_bytes)?;
        let slot = self.acquire_stack(stack_bytes)?;
        let id = self.next_fiber_id.get();
        self.next_fiber_id.set(id + 1);
        // SAFETY: `slot` was just taken from the pool, so nothing else uses
        // its memory; `layout` was computed for its size; what `f` and `T`
        // borrow outlives the fiber (this function's contract).
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
    pub(super) fn acquire_stack(&self, stack_bytes: usize) -> io::Result<StackSlot> {
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
    pub(super) fn retry_stack(
        &self,
        stack_bytes: usize,
        mut e: io::Error,
    ) -> io::Result<StackSlot> {
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
    pub(super) fn acquire_permit(&self) -> io::Result<()> {
        if self.pool.try_take_permit() {
            return Ok(());
        }
        self.wait_for_permit()
    }

    #[cold]
    #[inline(never)]
    pub(super) fn wait_for_permit(&self) -> io::Result<()> {
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
            self.sched.suspend(WaitKind::Stack);
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
    pub(super) fn release_permit(&self) {
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

    /// Retries spawns deferred for lack of stack permits, oldest first
    /// (the loop calls this while any are deferred).
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
}
