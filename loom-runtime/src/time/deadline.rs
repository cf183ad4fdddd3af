//! Call-tree deadlines: set for the length of a closure, kept in the
//! running fiber's control block, read by every wait (see the module
//! documentation of [`crate::time`]).

use std::time::{Duration, Instant};

use crate::rt::current::{fiber_deadline, update_fiber_deadline};

const WITH_DEADLINE: &str = "loom::time::with_deadline";

/// Runs `f` on this fiber with every blocking call in it bounded by
/// `deadline`: a call that would still be waiting then returns an error of
/// kind [`TimedOut`](std::io::ErrorKind::TimedOut) at the deadline (see
/// the [module documentation](crate::time) for what each call returns).
///
/// An enclosing deadline that is earlier stays in force. When `f` returns
/// or unwinds, the enclosing deadline (or none) is back. `f`'s result is
/// passed through untouched: the deadline shows only in the errors of the
/// calls it cut short.
///
/// # Panics
///
/// Outside a fiber.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (_tx, rx) = loom::sync::mpsc::channel::<u32>(1);
///     let start = Instant::now();
///     let got = loom::time::with_deadline(start + Duration::from_millis(10), || rx.recv());
///     assert_eq!(got, Err(loom::sync::mpsc::RecvError::Timeout));
///     assert!(start.elapsed() >= Duration::from_millis(10));
///     assert_eq!(loom::time::deadline(), None); // restored
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn with_deadline<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    bounded(Some(deadline), f)
}

/// [`with_deadline`] at `timeout` from now. A timeout too large for
/// `Instant` sets no deadline of its own.
///
/// # Panics
///
/// Outside a fiber.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let slept = loom::time::with_timeout(Duration::from_millis(5), || {
///         loom::time::sleep(Duration::from_secs(10))
///     });
///     assert_eq!(slept.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn with_timeout<R>(timeout: Duration, f: impl FnOnce() -> R) -> R {
    bounded(Instant::now().checked_add(timeout), f)
}

/// The call-tree deadline in force on the running fiber: the earliest of
/// the [`with_deadline`]s it is inside (or, in a scoped fiber, that its
/// spawner was inside). `None` without one, and outside a fiber.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// assert_eq!(loom::time::deadline(), None); // not in a fiber
/// loom::Runtime::builder().build()?.run(|| {
///     let soon = Instant::now() + Duration::from_secs(1);
///     let later = soon + Duration::from_secs(1);
///     loom::time::with_deadline(soon, || {
///         // The outer deadline is earlier: it stays.
///         loom::time::with_deadline(later, || assert_eq!(loom::time::deadline(), Some(soon)));
///         // A plain spawn's fiber may outlive this call: it has none.
///         assert_eq!(loom::spawn(loom::time::deadline).join().unwrap(), None);
///     });
///     assert_eq!(loom::time::deadline(), None);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn deadline() -> Option<Instant> {
    fiber_deadline()
}

#[track_caller]
fn bounded<R>(deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
    let outer = update_fiber_deadline(WITH_DEADLINE, |outer| match (outer, deadline) {
        (Some(outer), Some(deadline)) => Some(outer.min(deadline)),
        (outer, deadline) => outer.or(deadline),
    });
    let _restore = Restore { outer };
    f()
}

/// Puts the enclosing deadline back when `f` returns or unwinds. It runs on
/// the fiber that set the deadline: a fiber's frames never move to another.
struct Restore {
    outer: Option<Instant>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        update_fiber_deadline(WITH_DEADLINE, |_| self.outer);
    }
}
