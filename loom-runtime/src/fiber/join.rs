//! `JoinHandle`: owning access to a fiber's result.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::thread;

use crate::rt::event_loop::{EventLoop, Spawned};
use crate::stack::control::{Fiber, FiberControl};

/// An owned permission to join a fiber (wait for it and take its result).
///
/// Dropping the handle detaches the fiber: it keeps running and its result
/// is dropped when it finishes. While a finished fiber's handle is alive,
/// the fiber's stack stays reserved, because the result is stored on it.
///
/// The handle is `!Send`: like the fiber, it belongs to its loop's thread.
pub struct JoinHandle<T> {
    fiber: NonNull<FiberControl>,
    /// Keeps the loop's stack pool — and so the fiber's control block and
    /// result — alive as long as the handle, even past the runtime's end.
    event_loop: Rc<EventLoop>,
    _result: PhantomData<T>,
}

impl<T> JoinHandle<T> {
    /// The handle of a fiber `event_loop` just spawned.
    pub(crate) fn new(event_loop: Rc<EventLoop>, spawned: Spawned<T>) -> Self {
        JoinHandle {
            fiber: spawned.fiber,
            event_loop,
            _result: PhantomData,
        }
    }

    fn control(&self) -> &FiberControl {
        // SAFETY: a fiber's block stays valid until it finished *and* its
        // handle is gone (release_fiber is only called from the handle or,
        // for detached fibers, after the handle was dropped).
        unsafe { self.fiber.as_ref() }
    }

    pub(crate) fn fiber_ptr(&self) -> NonNull<FiberControl> {
        self.fiber
    }

    /// Waits for the fiber to finish and returns its result: `Ok` with its
    /// return value, or `Err` with the payload it panicked with, like
    /// [`std::thread::JoinHandle::join`].
    ///
    /// # Cancellation
    ///
    /// If the *joining* fiber is cancelled (before or while waiting), `join`
    /// returns `Err` with an [`std::io::Error`] `ECANCELED` (see [`crate::fiber::is_cancelled`]) as the
    /// payload and the joined fiber is detached.
    ///
    /// # Panics
    ///
    /// If the fiber has not finished and the caller is not a fiber of the
    /// same loop, or is that fiber itself.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let ok = loom::spawn(|| 7);
    ///     let failed = loom::spawn(|| -> i32 { panic!("boom") });
    ///     assert_eq!(ok.join().unwrap(), 7);
    ///     assert!(failed.join().is_err());
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn join(self) -> thread::Result<T> {
        if !self.is_finished() {
            let waited = crate::rt::current::with_current("JoinHandle::join", |lp| {
                assert!(
                    ptr::eq(lp, Rc::as_ptr(&self.event_loop)),
                    "loom: JoinHandle::join on an unfinished fiber must be called from a fiber of \
                     the loop that runs it"
                );
                lp.join_wait(self.fiber)
            });
            if let Err(interrupted) = waited {
                // Dropping `self` detaches the fiber.
                return Err(Box::new(interrupted));
            }
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: the handle is consumed (ManuallyDrop), so `event_loop` is
        // moved out exactly once.
        let event_loop = unsafe { ptr::read(&this.event_loop) };
        // SAFETY: the fiber finished, so it wrote its result exactly once,
        // and this consumed handle is the only reader.
        let result = unsafe { ptr::read(this.control().result.cast::<thread::Result<T>>()) };
        // SAFETY: finished, and the result was just moved out.
        unsafe { event_loop.release_fiber(this.fiber) };
        result
    }

    /// Whether the fiber has finished (returned or panicked). Never blocks.
    pub fn is_finished(&self) -> bool {
        self.control().is_finished()
    }

    /// Asks the fiber to stop: its current blocking call, or its next one,
    /// returns an [`std::io::Error`] `ECANCELED` (see [`crate::fiber::is_cancelled`]), so a fiber that
    /// propagates errors with `?` unwinds normally. Cancellation is sticky:
    /// every later blocking call of that fiber fails the same way. A fiber
    /// busy computing is not interrupted until it blocks. Cancelling a
    /// finished fiber does nothing.
    pub fn cancel(&self) {
        self.event_loop.cancel(self.fiber);
    }

    /// The fiber's id and name.
    pub fn fiber(&self) -> Fiber {
        Fiber::of(self.control())
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let control = self.control();
        if control.is_finished() {
            // SAFETY: finished, so the result was written; this handle is its
            // only owner and is going away.
            let result = unsafe { ptr::read(control.result.cast::<thread::Result<T>>()) };
            // SAFETY: finished, and the result was just moved out.
            unsafe { self.event_loop.release_fiber(self.fiber) };
            drop(result);
        } else {
            control.detached.set(true);
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("fiber", &self.fiber())
            .field("finished", &self.is_finished())
            .finish()
    }
}
