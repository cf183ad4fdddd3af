//! Running a [`Future`] from a fiber: [`block_on`] and [`try_block_on`].
//!
//! The future is polled *on the calling fiber*, in its own frame. While it
//! is pending the fiber is suspended and its loop runs the other fibers;
//! the future's [`Waker`](std::task::Waker) makes the fiber runnable again
//! — directly when woken on the fiber's own loop (no allocation, no atomic
//! read-modify-write beyond the waker's state), through the loop's
//! mailbox when woken from another loop or from any other thread. Any
//! runtime-agnostic future works: `futures` and `async-channel` channels,
//! `event-listener`, hand-written futures, [`SendJoinHandle`](crate::SendJoinHandle).
//! Futures that need a particular runtime's reactor or timers (tokio's
//! sockets, `tokio::time`) do not: with the `tokio` feature, run those
//! through `compat::tokio::block_on`.
//!
//! A waker may be kept after `block_on` returned, even after the fiber
//! finished and its stack slot was given to another fiber: waking it then
//! does nothing (see `waker.rs` for how).

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::ptr::NonNull;
use std::task::{Context, Poll};
use std::thread;
use std::time::Instant;

use crate::driver::remote::FiberWake;
use crate::rt::current;
use crate::rt::event_loop::EventLoop;
use crate::stack::control::FiberControl;
use crate::stats::WaitKind;
use crate::sys::cancelled;
use crate::wheel::TimerEntry;

mod waker;

use waker::{Owner, Target};

/// Runs `future` to completion on the calling fiber and returns its
/// output. While it is pending, only this fiber waits: the loop runs the
/// others.
///
/// The future's waker may be called from anywhere — the same loop,
/// another loop, a plain thread — and may be kept after this returns (it
/// then does nothing). A future that wakes itself and returns `Pending`
/// (a "yield") lets the loop's other fibers run before it is polled again.
///
/// **Cancellation is ignored**: a future cannot be interrupted from
/// outside, and `block_on` has no error to report it with, so a cancelled
/// fiber keeps waiting until the future completes (its *next* blocking
/// call reports the cancellation). At shutdown such a fiber holds the
/// runtime for the shutdown timeout and is then abandoned. A call-tree
/// deadline ([`crate::time::with_deadline`]) is ignored likewise. Use
/// [`try_block_on`] to have either drop the future instead.
///
/// Outside a loom runtime, `block_on` blocks the calling thread until the
/// future completes, like `futures::executor::block_on`.
///
/// # Examples
///
/// A runtime-agnostic channel, with the sender on another fiber:
///
/// ```
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use std::sync::{Arc, Mutex};
/// use std::task::{Poll, Waker};
///
/// // A one-slot mailbox: (value, waker of whoever waits for it).
/// type Slot = Arc<Mutex<(Option<u32>, Option<Waker>)>>;
///
/// let rt = loom::Runtime::builder().build()?;
/// let got = rt.run(|| {
///     let slot: Slot = Arc::default();
///     let sender = Arc::clone(&slot);
///     loom::spawn(move || {
///         let mut slot = sender.lock().unwrap();
///         slot.0 = Some(42);
///         if let Some(waker) = slot.1.take() {
///             waker.wake();
///         }
///     });
///     loom::block_on(poll_fn(|cx| {
///         let mut slot = slot.lock().unwrap();
///         match slot.0.take() {
///             Some(value) => Poll::Ready(value),
///             None => {
///                 slot.1 = Some(cx.waker().clone());
///                 Poll::Pending
///             }
///         }
///     }))
/// });
/// assert_eq!(got, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// If the future panics (the panic propagates; the future is dropped).
pub fn block_on<F: Future>(future: F) -> F::Output {
    match run(future, false) {
        Ok(output) => output,
        Err(_) => unreachable!("an uncancellable block_on reports no error"),
    }
}

/// [`block_on`] as a blocking call that can be interrupted: a cancelled
/// fiber stops waiting — the future is dropped and the call returns the
/// cancellation error (`ECANCELED`, see [`crate::fiber::is_cancelled`]) —
/// and so does one whose call-tree deadline
/// ([`crate::time::with_deadline`]) passes while the future is pending,
/// with an error of kind `TimedOut`.
///
/// Like every blocking call, it refuses to start on a fiber that is
/// already cancelled (without polling the future); past the deadline the
/// future is still polled once, so one that is ready succeeds. An
/// interruption that arrives while the future is pending wins over a
/// wake-up that arrives at the same time. Outside a fiber (a plain thread
/// blocks) nothing interrupts it, and it always returns `Ok`.
///
/// # Errors
///
/// The cancellation error if the fiber is cancelled, or `TimedOut` if its
/// call-tree deadline passes, before the future completes.
///
/// # Examples
///
/// ```
/// use std::future::pending;
///
/// let rt = loom::Runtime::builder().build()?;
/// rt.run(|| {
///     let waiter = loom::spawn(|| loom::try_block_on(pending::<()>()));
///     loom::yield_now(); // let it start waiting
///     waiter.cancel();
///     let error = waiter.join().unwrap().unwrap_err();
///     assert!(loom::fiber::is_cancelled(&error));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// If the future panics.
pub fn try_block_on<F: Future>(future: F) -> io::Result<F::Output> {
    run(future, true)
}

/// Fails as a blocking call does — after a yield — if the running fiber
/// is cancelled; `Ok` outside a fiber.
#[cfg(feature = "tokio")]
pub(crate) fn refuse_if_cancelled() -> io::Result<()> {
    current::try_with_current(|lp| match lp.sched.current() {
        // SAFETY: the running fiber's block is valid while it runs.
        Some(fiber) if unsafe { fiber.as_ref() }.cancelled.get() => Err(lp.refuse_cancelled()),
        _ => Ok(()),
    })
    .unwrap_or(Ok(()))
}

fn run<F: Future>(future: F, cancellable: bool) -> io::Result<F::Output> {
    let mut future = pin!(future);
    let on_fiber = current::try_with_current(|lp| {
        lp.sched
            .current()
            .map(|fiber| on_fiber(lp, fiber, future.as_mut(), cancellable))
    });
    match on_fiber.flatten() {
        Some(result) => result,
        // Outside a runtime — or on a loop's thread outside any fiber,
        // where there is nothing to suspend — block the thread.
        None => Ok(on_thread(future)),
    }
}

fn on_fiber<F: Future>(
    lp: &EventLoop,
    fiber: NonNull<FiberControl>,
    mut future: Pin<&mut F>,
    cancellable: bool,
) -> io::Result<F::Output> {
    // SAFETY: the running fiber's block is valid while it runs.
    let me = unsafe { fiber.as_ref() };
    if cancellable && me.cancelled.get() {
        return Err(lp.refuse_cancelled());
    }
    // Declared before `owner`, so dropped after it: the record outlives
    // every wake-up the cell can still deliver (invariant 1).
    let wake = FiberWake::new(fiber);
    let owner = Owner::new(Target::fiber(&wake, lp.driver.remote()));
    let waker = owner.waker();
    let mut cx = Context::from_waker(&waker);
    // The call-tree deadline bounds the cancellable form's waits, read
    // once: the future runs on this fiber, and a `with_deadline` inside a
    // poll has ended by the time the poll returns.
    let deadline = if cancellable {
        crate::time::deadline()
    } else {
        None
    };
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Ok(output);
        }
        wake.reset();
        if owner.park() {
            let stop = Stop {
                cancellable,
                deadline,
            };
            if let Some(error) = suspend_parked(lp, me, fiber, &owner, &wake, stop) {
                return Err(error);
            }
            owner.resume_polling();
        } else {
            // Woken during the poll (a future that yields): the others
            // run before it is polled again.
            lp.sched.yield_now();
        }
        if cancellable && me.cancelled.get() {
            return Err(cancelled());
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(io::ErrorKind::TimedOut.into());
        }
    }
}

/// What ends a parked wait besides a wake-up.
#[derive(Clone, Copy)]
struct Stop {
    /// Cancellation ends it (`try_block_on`).
    cancellable: bool,
    /// The call-tree deadline ends it.
    deadline: Option<Instant>,
}

/// Suspends a parked fiber until its wake-up is delivered. Returns the
/// error that ended the wait instead (cancellation, the deadline), if
/// any; either way no wake-up is in flight when it returns.
fn suspend_parked(
    lp: &EventLoop,
    me: &FiberControl,
    fiber: NonNull<FiberControl>,
    owner: &Owner,
    wake: &FiberWake,
    stop: Stop,
) -> Option<io::Error> {
    let timer = TimerEntry::new(Some(fiber));
    if let Some(deadline) = stop.deadline
        && !lp.arm_timer(&timer, deadline)
        && owner.abandon_park()
    {
        return Some(io::ErrorKind::TimedOut.into());
    }
    // Only a waker held elsewhere can wake the fiber; if there is one it
    // may be on another thread, so the loop must not call this wait a
    // deadlock. With none, nothing but cancellation can end the wait.
    let remote = owner.has_wakers();
    if remote {
        lp.remote_wait_started();
    }
    let mut stopped = None;
    loop {
        // Skipped if a wake-up was already claimed before the timer could
        // be armed (the deadline had passed): it is delivered below.
        if !wake.is_delivered() {
            lp.sched.suspend(WaitKind::Future);
        }
        if wake.is_delivered() {
            break;
        }
        let error = if stop.cancellable && me.cancelled.get() {
            cancelled()
        } else if timer.fired() || stop.deadline.is_some_and(|d| Instant::now() >= d) {
            io::ErrorKind::TimedOut.into()
        } else {
            // Woken for another reason (a cancellation block_on ignores):
            // still parked.
            continue;
        };
        if !owner.abandon_park() {
            // A waker claimed the wake-up first: it is on its way and
            // still refers to `wake`, so wait for it, then report the
            // interruption all the same.
            while !wake.is_delivered() {
                lp.sched.suspend(WaitKind::Future);
            }
        }
        stopped = Some(error);
        break;
    }
    if remote {
        lp.remote_wait_ended();
    }
    lp.disarm_timer(&timer);
    stopped
}

fn on_thread<F: Future>(mut future: Pin<&mut F>) -> F::Output {
    let owner = Owner::new(Target::Thread(thread::current()));
    let waker = owner.waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        if owner.park() {
            while owner.is_parked() {
                thread::park();
            }
            owner.resume_polling();
        }
    }
}
