//! A condition variable for [`Mutex`](super::Mutex): a wait list of its
//! own, joined before the mutex is released so that no notification sent
//! after the release can miss the waiter.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::flavour::{Flavour, RawLock, Shared};
use super::mutex::MutexGuard;
use super::semaphore::deadline_after;
use super::waiter::{Interrupted, WaitList, Waiter, Wakes};

/// A condition variable whose waiting suspends only the calling fiber (or,
/// for the [`Shared`] flavour, blocks a thread outside the runtime).
///
/// Like std's `Condvar`: [`wait`](Condvar::wait) unlocks the mutex, sleeps
/// until notified, and locks it again. Notified waiters wake in the order
/// they began waiting. Always re-check the condition after waking (or use
/// [`wait_while`](Condvar::wait_while)): another fiber may have changed it
/// before the waiter got the mutex back.
///
/// This is the generic type; use [`loom::sync::Condvar`](super::Condvar)
/// or [`loom::sync::local::Condvar`](super::local::Condvar).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use loom::sync::local::{Condvar, Mutex};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let pair = Rc::new((Mutex::new(false), Condvar::new()));
///     let waiter = {
///         let pair = pair.clone();
///         loom::spawn(move || -> std::io::Result<()> {
///             let (ready, condvar) = &*pair;
///             let _ready = condvar.wait_while(ready.lock()?, |ready| !*ready)?;
///             Ok(())
///         })
///     };
///     *pair.0.lock()? = true;
///     pair.1.notify_one();
///     waiter.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Condvar<F: Flavour = Shared> {
    waiters: F::Lock<WaitList>,
}

impl<F: Flavour> Condvar<F> {
    /// A condition variable nobody waits on.
    pub fn new() -> Self {
        Condvar {
            waiters: F::Lock::new(WaitList::new()),
        }
    }

    /// Unlocks `guard`'s mutex, waits for a notification and locks the
    /// mutex again.
    ///
    /// # Errors
    /// The cancellation error ([`crate::fiber::is_cancelled`]) if the
    /// calling fiber is cancelled while waiting or relocking, `TimedOut` if
    /// its call-tree deadline ([`crate::time::with_deadline`]) passes
    /// first; the mutex is then *not* held.
    ///
    /// # Panics
    /// A [`Local`](super::Local) condition variable used outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use loom::sync::{Condvar, Mutex};
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let pair = Arc::new((Mutex::new(None), Condvar::new()));
    ///     let sender = pair.clone();
    ///     loom::spawn(move || {
    ///         *sender.0.lock().unwrap() = Some("hello");
    ///         sender.1.notify_all();
    ///     });
    ///     let (slot, condvar) = &*pair;
    ///     let mut message = slot.lock()?;
    ///     while message.is_none() {
    ///         message = condvar.wait(message)?;
    ///     }
    ///     assert_eq!(*message, Some("hello"));
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T, F>,
    ) -> io::Result<MutexGuard<'a, T, F>> {
        self.wait_until(guard, None, "Condvar::wait")
            .map(|(guard, _)| guard)
    }

    /// Waits while `condition` holds, re-checking it under the lock after
    /// each wake-up; returns with the mutex locked and `condition` false.
    ///
    /// # Errors
    /// As [`Condvar::wait`].
    #[track_caller]
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T, F>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> io::Result<MutexGuard<'a, T, F>> {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`Condvar::wait`] for at most `timeout`; the `bool` says whether the
    /// time ran out (the mutex is locked again either way).
    ///
    /// # Errors
    /// As [`Condvar::wait`]: a call-tree deadline earlier than `timeout`
    /// ends the wait with the `TimedOut` error and without the mutex, as
    /// it ends the caller's other blocking calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use loom::sync::{Condvar, Mutex};
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (mutex, condvar) = (Mutex::new(()), Condvar::new());
    ///     let (_guard, timed_out) =
    ///         condvar.wait_timeout(mutex.lock()?, Duration::from_millis(5))?;
    ///     assert!(timed_out);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T, F>,
        timeout: Duration,
    ) -> io::Result<(MutexGuard<'a, T, F>, bool)> {
        self.wait_until(guard, deadline_after(timeout), "Condvar::wait_timeout")
    }

    /// [`Condvar::wait_while`] for at most `timeout` in all; the `bool` is
    /// true if the time ran out with `condition` still holding.
    ///
    /// # Errors
    /// As [`Condvar::wait`].
    #[track_caller]
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T, F>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> io::Result<(MutexGuard<'a, T, F>, bool)> {
        let deadline = deadline_after(timeout);
        while condition(&mut *guard) {
            let (relocked, timed_out) =
                self.wait_until(guard, deadline, "Condvar::wait_timeout_while")?;
            guard = relocked;
            if timed_out {
                let still = condition(&mut *guard);
                return Ok((guard, still));
            }
        }
        Ok((guard, false))
    }

    /// Wakes the longest-waiting fiber or thread, if any. Notifying with
    /// nobody waiting does nothing (it is not remembered).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use loom::sync::local::{Condvar, Mutex};
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let pair = Rc::new((Mutex::new(0), Condvar::new()));
    ///     let waiters: Vec<_> = (0..2)
    ///         .map(|_| {
    ///             let pair = pair.clone();
    ///             loom::spawn(move || {
    ///                 let mut woken = pair.1.wait(pair.0.lock()?)?;
    ///                 *woken += 1;
    ///                 Ok::<(), std::io::Error>(())
    ///             })
    ///         })
    ///         .collect();
    ///     loom::yield_now(); // both wait now
    ///     pair.1.notify_one();
    ///     loom::yield_now();
    ///     assert_eq!(*pair.0.lock()?, 1);
    ///     pair.1.notify_all();
    ///     for waiter in waiters {
    ///         waiter.join().unwrap()?;
    ///     }
    ///     assert_eq!(*pair.0.lock()?, 2);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn notify_one(&self) {
        self.waiters.with(|waiters| waiters.notify_one()).deliver();
    }

    /// Wakes everyone waiting (see [`Condvar::notify_one`]'s example).
    pub fn notify_all(&self) {
        self.waiters.with(|waiters| waiters.notify_all()).deliver();
    }

    #[track_caller]
    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T, F>,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> io::Result<(MutexGuard<'a, T, F>, bool)> {
        let mutex = guard.mutex;
        let waiter = Waiter::for_current(F::CROSS_THREAD, what);
        if let Err(e) = waiter
            .refuse_if_cancelled()
            .map_err(Interrupted::into_io_error)
        {
            drop(guard);
            return Err(e);
        }
        self.waiters.with(|waiters| {
            // SAFETY: `waiter` stays in this frame until removed below or
            // notified and delivered (waited for below).
            unsafe { waiters.push(&waiter) }
        });
        // Joined before unlocking: a notifier that saw the state this
        // guard protects will find the waiter.
        drop(guard);
        let timed_out = match waiter.sleep(deadline) {
            Ok(()) => false,
            Err(interrupted) => {
                let cancelled = interrupted == Interrupted::Cancelled;
                // The fiber's call-tree deadline, unlike this wait's own
                // limit, ends the call as an error, as it does every other.
                let cut_short = !cancelled && tree_deadline_first(deadline);
                let passed_on = self.waiters.with(|waiters| {
                    if waiters.remove(&waiter) {
                        return None;
                    }
                    // A cancelled waiter hands its notification to one
                    // that will use it; a late one keeps it.
                    Some(if cancelled {
                        waiters.notify_one()
                    } else {
                        Wakes::new()
                    })
                });
                let notified = passed_on.is_some();
                if let Some(wakes) = passed_on {
                    waiter.wait_delivered();
                    wakes.deliver();
                }
                if cancelled || (cut_short && !notified) {
                    return Err(interrupted.into_io_error());
                }
                // Notified before the deadline was noticed: not a timeout.
                !notified
            }
        };
        match mutex.lock() {
            Ok(guard) => Ok((guard, timed_out)),
            Err(e) => {
                // Cancelled while relocking: a notification this waiter
                // took goes to another (a spurious wake-up at worst).
                if !timed_out {
                    self.notify_one();
                }
                Err(e)
            }
        }
    }
}

impl<F: Flavour> Default for Condvar<F> {
    fn default() -> Self {
        Condvar::new()
    }
}

impl<F: Flavour> fmt::Debug for Condvar<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

/// Whether the running fiber's call-tree deadline comes before `own` (a
/// wait's own limit; a tie goes to `own`).
fn tree_deadline_first(own: Option<Instant>) -> bool {
    crate::rt::current::fiber_deadline().is_some_and(|tree| own.is_none_or(|own| tree < own))
}
