//! A mutual-exclusion lock: a one-permit [`RawSemaphore`] guarding a value.

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::flavour::{Flavour, Shared};
use super::semaphore::{RawSemaphore, deadline_after};

/// A mutual-exclusion lock whose waiting suspends only the calling fiber
/// (or, for the [`Shared`] flavour, blocks a thread outside the runtime).
///
/// Like std's `Mutex`, but a guard may be held across blocking calls —
/// other fibers wait for it without blocking the loop. Fair: waiters get
/// the lock in arrival order, handed over by the unlocking guard, so a
/// fiber that unlocks and relocks cannot starve them. No poisoning: a
/// panic while locked just unlocks.
///
/// This is the generic type; use [`loom::sync::Mutex`](super::Mutex) or
/// [`loom::sync::local::Mutex`](super::local::Mutex).
///
/// # Examples
///
/// Fibers on two loops adding to one counter:
///
/// ```
/// use std::sync::Arc;
/// use loom::sync::Mutex;
///
/// let rt = loom::Runtime::builder().threads(2).build()?;
/// let total = rt.run(|| {
///     let counter = Arc::new(Mutex::new(0));
///     let remote = {
///         let counter = counter.clone();
///         loom::spawn_on(1, move || {
///             for _ in 0..100 {
///                 *counter.lock().unwrap() += 1;
///             }
///         })
///     };
///     for _ in 0..100 {
///         *counter.lock().unwrap() += 1;
///     }
///     remote.join().unwrap();
///     counter.lock().map(|total| *total)
/// })?;
/// assert_eq!(total, 200);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Mutex<T: ?Sized, F: Flavour = Shared> {
    /// One permit: whoever holds it may touch `value`.
    pub(super) raw: RawSemaphore<F>,
    value: UnsafeCell<T>,
}

// SAFETY: the single permit lets one guard at a time reach `value`, and the
// Shared flavour's queue is thread-safe, so sharing the mutex only ever
// moves access to `T` between threads: `T: Send` suffices, as for std's.
// The Local flavour stays !Sync.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T, Shared> {}

impl<T, F: Flavour> Mutex<T, F> {
    /// A new, unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            raw: RawSemaphore::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the mutex.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mutex = loom::sync::Mutex::new(1);
    /// *mutex.get_mut() += 1;
    /// assert_eq!(mutex.into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized, F: Flavour> Mutex<T, F> {
    /// Waits for the lock; dropping the guard unlocks.
    ///
    /// Locking a mutex the calling fiber already holds waits forever (the
    /// loop's deadlock detection will cancel it if nothing else runs).
    ///
    /// # Errors
    /// The cancellation error ([`crate::fiber::is_cancelled`]) if the
    /// calling fiber is cancelled while waiting, `TimedOut` if its
    /// call-tree deadline ([`crate::time::with_deadline`]) passes first; it
    /// then holds no lock. A free lock is taken whatever the time.
    ///
    /// # Panics
    /// A [`Local`](super::Local) mutex waited on outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let mutex = loom::sync::Mutex::new(vec![1]);
    ///     mutex.lock()?.push(2);
    ///     assert_eq!(*mutex.lock()?, [1, 2]);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn lock(&self) -> io::Result<MutexGuard<'_, T, F>> {
        self.raw.acquire(1, None, "Mutex::lock")?;
        Ok(self.guard())
    }

    /// The lock if it is free and nobody is waiting; never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let mutex = loom::sync::Mutex::new(1);
    /// let guard = mutex.try_lock().unwrap();
    /// assert!(mutex.try_lock().is_none());
    /// drop(guard);
    /// assert!(mutex.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T, F>> {
        self.raw.try_acquire(1).then(|| self.guard())
    }

    /// [`Mutex::lock`], giving up after `timeout`.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the time is up, and as
    /// [`Mutex::lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let mutex = loom::sync::Mutex::new(());
    ///     let _held = mutex.lock().unwrap();
    ///     let err = mutex.lock_timeout(Duration::from_millis(5)).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> io::Result<MutexGuard<'_, T, F>> {
        self.raw
            .acquire(1, deadline_after(timeout), "Mutex::lock_timeout")?;
        Ok(self.guard())
    }

    /// The value, through an exclusive borrow: no locking needed.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut mutex = loom::sync::local::Mutex::new(1);
    /// *mutex.get_mut() = 5;
    /// assert_eq!(*mutex.try_lock().unwrap(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// A guard for the permit the caller just took.
    fn guard(&self) -> MutexGuard<'_, T, F> {
        MutexGuard {
            mutex: self,
            _marker: PhantomData,
        }
    }
}

impl<T: Default, F: Flavour> Default for Mutex<T, F> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T, F: Flavour> From<T> for Mutex<T, F> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug, F: Flavour> fmt::Debug for Mutex<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Holds a [`Mutex`] locked; dropping it unlocks and hands the lock to the
/// oldest waiter.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized, F: Flavour = Shared> {
    pub(super) mutex: &'a Mutex<T, F>,
    /// It hands out `&mut T`: Send and Sync only as `&mut T` is.
    _marker: PhantomData<&'a mut T>,
}

impl<T: ?Sized, F: Flavour> Deref for MutexGuard<'_, T, F> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard owns the mutex's only permit, so no other
        // reference to the value exists.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized, F: Flavour> DerefMut for MutexGuard<'_, T, F> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized, F: Flavour> Drop for MutexGuard<'_, T, F> {
    fn drop(&mut self) {
        self.mutex.raw.release(1);
    }
}

impl<T: ?Sized + fmt::Debug, F: Flavour> fmt::Debug for MutexGuard<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
