//! Sleeping.
//!
//! Deadlines live in the loop's hierarchical timer wheel with millisecond
//! ticks, rounded up: a sleep never ends early, and may end up to about a
//! millisecond late (plus scheduling delay when the loop is busy).

use std::io;
use std::time::{Duration, Instant};

use crate::rt::current::with_current;

/// Suspends the running fiber for at least `duration`; other fibers run
/// meanwhile. Like `std::thread::sleep`, but only the fiber waits.
///
/// A zero or elapsed duration still yields to the other runnable fibers. A
/// duration too large for `Instant` sleeps until the fiber is cancelled.
///
/// # Errors
///
/// The cancellation error ([`crate::fiber::is_cancelled`]) if the fiber is cancelled before or during the sleep.
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
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let start = Instant::now();
///     loom::time::sleep(Duration::from_millis(5))?;
///     assert!(start.elapsed() >= Duration::from_millis(5));
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> io::Result<()> {
    let now = Instant::now();
    with_current("loom::time::sleep", |lp| {
        lp.sleep_until(now.checked_add(duration), now)
    })
}

/// Suspends the running fiber until `deadline`; see [`sleep`].
///
/// # Errors
///
/// The cancellation error ([`crate::fiber::is_cancelled`]) if the fiber is cancelled before or during the sleep.
#[track_caller]
pub fn sleep_until(deadline: Instant) -> io::Result<()> {
    with_current("loom::time::sleep_until", |lp| {
        lp.sleep_until(Some(deadline), Instant::now())
    })
}
