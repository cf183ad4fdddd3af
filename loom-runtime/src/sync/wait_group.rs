//! Go's `sync.WaitGroup`: wait until a counter of outstanding tasks is
//! back to zero.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::flavour::{Flavour, RawLock, Shared};
use super::semaphore::deadline_after;
use super::waiter::{WaitList, wait_until};

/// Waits for a group of tasks to finish, like Go's `sync.WaitGroup`:
/// [`add`](WaitGroup::add) before starting tasks, [`done`](WaitGroup::done)
/// as each finishes, [`wait`](WaitGroup::wait) until the count is zero.
///
/// Waiting suspends only the calling fiber (or, for the [`Shared`]
/// flavour, blocks a thread outside the runtime). Every wait in progress
/// when the count reaches zero returns, even if `add` raises it again
/// before the waiter runs, so a group can be reused.
///
/// This is the generic type; use [`loom::sync::WaitGroup`](super::WaitGroup)
/// or [`loom::sync::local::WaitGroup`](super::local::WaitGroup).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use loom::sync::local::WaitGroup;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let group = Rc::new(WaitGroup::new());
///     for i in 0..3 {
///         group.add(1);
///         let group = group.clone();
///         loom::spawn(move || {
///             loom::time::sleep(Duration::from_millis(i)).unwrap();
///             group.done();
///         });
///     }
///     group.wait()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct WaitGroup<F: Flavour = Shared> {
    state: F::Lock<State>,
}

struct State {
    count: usize,
    /// Bumped each time `count` reaches zero, so a waiter can tell it did
    /// even if the count rose again before it ran.
    generation: u64,
    waiters: WaitList,
}

impl<F: Flavour> WaitGroup<F> {
    /// A group with a count of zero.
    pub fn new() -> Self {
        WaitGroup {
            state: F::Lock::new(State {
                count: 0,
                generation: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Adds `count` outstanding tasks: call it before starting them, so a
    /// `wait` cannot see zero too early.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = loom::sync::WaitGroup::new();
    /// group.add(2);
    /// group.done();
    /// group.done();
    /// group.wait()?; // zero already: returns at once
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// If the count would overflow `usize`.
    pub fn add(&self, count: usize) {
        let added = self.state.with(|state| {
            state.count = state.count.checked_add(count)?;
            Some(())
        });
        // Outside the lock: a panic inside would leave a Local lock busy.
        assert!(added.is_some(), "loom: WaitGroup count overflowed usize");
    }

    /// Marks one task finished; at zero, wakes every waiter.
    ///
    /// # Panics
    /// If the count is already zero (more `done`s than `add`s).
    pub fn done(&self) {
        let wakes = self.state.with(|state| {
            state.count = state.count.checked_sub(1)?;
            if state.count > 0 {
                return Some(None);
            }
            state.generation = state.generation.wrapping_add(1);
            Some(Some(state.waiters.notify_all()))
        });
        let Some(wakes) = wakes else {
            panic!("loom: WaitGroup::done called more often than WaitGroup::add");
        };
        if let Some(wakes) = wakes {
            wakes.deliver();
        }
    }

    /// Waits until the count is zero.
    ///
    /// # Errors
    /// The cancellation error ([`crate::fiber::is_cancelled`]) if the
    /// calling fiber is cancelled while waiting, `TimedOut` if its
    /// call-tree deadline ([`crate::time::with_deadline`]) passes first.
    ///
    /// # Panics
    /// A [`Local`](super::Local) group waited on outside a fiber.
    ///
    /// # Examples
    ///
    /// A plain thread waiting for a fiber:
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let group = Arc::new(loom::sync::WaitGroup::new());
    ///     group.add(1);
    ///     let waiter = std::thread::spawn({
    ///         let group = group.clone();
    ///         move || group.wait()
    ///     });
    ///     loom::time::sleep(std::time::Duration::from_millis(1))?;
    ///     group.done();
    ///     waiter.join().unwrap()
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait(&self) -> io::Result<()> {
        self.wait_until(None, "WaitGroup::wait")
    }

    /// [`WaitGroup::wait`], giving up after `timeout`.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the time is up, and as
    /// [`WaitGroup::wait`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let group = loom::sync::WaitGroup::new();
    ///     group.add(1);
    ///     let err = group.wait_timeout(Duration::from_millis(5)).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    ///     group.done();
    ///     group.wait()
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.wait_until(deadline_after(timeout), "WaitGroup::wait_timeout")
    }

    #[track_caller]
    fn wait_until(&self, deadline: Option<Instant>, what: &'static str) -> io::Result<()> {
        let mut entered = None;
        wait_until(
            &self.state,
            |state| &state.waiters,
            deadline,
            F::CROSS_THREAD,
            what,
            |state| {
                let entered = *entered.get_or_insert(state.generation);
                (state.count == 0 || state.generation != entered).then_some(())
            },
        )
        .map_err(|interrupted| interrupted.into_io_error())
    }
}

impl<F: Flavour> Default for WaitGroup<F> {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl<F: Flavour> fmt::Debug for WaitGroup<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.state.with(|state| state.count);
        f.debug_struct("WaitGroup")
            .field("count", &count)
            .finish_non_exhaustive()
    }
}
