//! [`unblock`]: user code on the blocking pool, from a fiber.

use std::io;
use std::panic;

use super::run;
use crate::rt::current::with_current;

/// Runs `f` on the blocking pool and suspends only the calling fiber until
/// it returns; the other fibers keep running. Use it for CPU-heavy work or
/// for calls that would otherwise block the whole loop (a std `Mutex`, a
/// C library, `std::fs` calls loom has no op for).
///
/// Cancellation: if the fiber is cancelled while `f` still waits in the
/// queue, `f` never runs and `unblock` returns the cancellation error; once a worker
/// started `f`, the fiber waits for it to finish (a thread cannot be
/// interrupted) and gets its result.
///
/// A panic in `f` resumes in the calling fiber.
///
/// # Errors
///
/// The cancellation error as above, or the error from starting the first worker
/// thread.
///
/// # Panics
///
/// Outside a fiber, or if `f` panicked.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let sum = loom::unblock(|| (1..=1000u64).sum::<u64>())?;
///     assert_eq!(sum, 500_500);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn unblock<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match with_current("loom::unblock", |lp| run(lp, f))? {
        Ok(value) => Ok(value),
        Err(payload) => panic::resume_unwind(payload),
    }
}
