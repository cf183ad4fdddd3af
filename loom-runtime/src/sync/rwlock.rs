//! A reader-writer lock: a [`RawSemaphore`] of `MAX_READERS` permits, one
//! per reader and all of them per writer, so its FIFO queue decides the
//! order.

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use super::flavour::{Flavour, Shared};
use super::semaphore::RawSemaphore;

/// Readers at once; a writer takes them all. More than fibers can exist.
const MAX_READERS: usize = usize::MAX >> 1;

/// A reader-writer lock whose waiting suspends only the calling fiber (or,
/// for the [`Shared`] flavour, blocks a thread outside the runtime).
///
/// Fair (FIFO): requests are served in arrival order, consecutive readers
/// together. A waiting writer holds back the readers that come after it,
/// so a stream of readers cannot starve it, and the readers queued behind
/// it go next. No poisoning.
///
/// This is the generic type; use [`loom::sync::RwLock`](super::RwLock) or
/// [`loom::sync::local::RwLock`](super::local::RwLock).
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let lock = loom::sync::RwLock::new(5);
///     {
///         let a = lock.read()?;
///         let b = lock.read()?;
///         assert_eq!(*a + *b, 10);
///         assert!(lock.try_write().is_none());
///     }
///     *lock.write()? += 1;
///     assert_eq!(*lock.read()?, 6);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct RwLock<T: ?Sized, F: Flavour = Shared> {
    raw: RawSemaphore<F>,
    value: UnsafeCell<T>,
}

// SAFETY: readers share `&T` across threads (so `T: Sync`) and a writer
// may get `&mut T` on any thread (so `T: Send`), as for std's; the permits
// keep readers and a writer apart, and the Shared flavour's queue is
// thread-safe. The Local flavour stays !Sync.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T, Shared> {}

impl<T, F: Flavour> RwLock<T, F> {
    /// A new, unlocked lock holding `value`.
    pub fn new(value: T) -> Self {
        RwLock {
            raw: RawSemaphore::new(MAX_READERS),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lock = loom::sync::RwLock::new(1);
    /// *lock.get_mut() += 1;
    /// assert_eq!(lock.into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized, F: Flavour> RwLock<T, F> {
    /// Waits for shared access, behind any writer that came first.
    ///
    /// # Errors
    /// The cancellation error ([`crate::fiber::is_cancelled`]) if the
    /// calling fiber is cancelled while waiting, `TimedOut` if its
    /// call-tree deadline ([`crate::time::with_deadline`]) passes first; it
    /// then holds nothing.
    ///
    /// # Panics
    /// A [`Local`](super::Local) lock waited on outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let lock = loom::sync::local::RwLock::new("shared");
    ///     let (a, b) = (lock.read()?, lock.read()?);
    ///     assert_eq!(*a, *b);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn read(&self) -> io::Result<RwLockReadGuard<'_, T, F>> {
        self.raw.acquire(1, None, "RwLock::read")?;
        Ok(self.read_guard())
    }

    /// Waits for exclusive access.
    ///
    /// # Errors
    /// As [`RwLock::read`].
    ///
    /// # Panics
    /// As [`RwLock::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let lock = loom::sync::RwLock::new(vec![1]);
    ///     lock.write()?.push(2);
    ///     assert_eq!(*lock.read()?, [1, 2]);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn write(&self) -> io::Result<RwLockWriteGuard<'_, T, F>> {
        self.raw.acquire(MAX_READERS, None, "RwLock::write")?;
        Ok(self.write_guard())
    }

    /// Shared access if no writer holds or awaits the lock; never waits.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T, F>> {
        self.raw.try_acquire(1).then(|| self.read_guard())
    }

    /// Exclusive access if the lock is free and nobody waits; never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = loom::sync::RwLock::new(0);
    /// let reader = lock.try_read().unwrap();
    /// assert!(lock.try_write().is_none());
    /// drop(reader);
    /// *lock.try_write().unwrap() = 1;
    /// ```
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T, F>> {
        self.raw
            .try_acquire(MAX_READERS)
            .then(|| self.write_guard())
    }

    /// The value, through an exclusive borrow: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, T, F> {
        RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T, F> {
        RwLockWriteGuard {
            lock: self,
            _marker: PhantomData,
        }
    }
}

impl<T: Default, F: Flavour> Default for RwLock<T, F> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T, F: Flavour> From<T> for RwLock<T, F> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug, F: Flavour> fmt::Debug for RwLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Shared access to an [`RwLock`]'s value; dropping it releases it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized, F: Flavour = Shared> {
    lock: &'a RwLock<T, F>,
    _marker: PhantomData<&'a T>,
}

impl<T: ?Sized, F: Flavour> Deref for RwLockReadGuard<'_, T, F> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a reader's permit excludes writers, the only ones that
        // take `&mut T`.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized, F: Flavour> Drop for RwLockReadGuard<'_, T, F> {
    fn drop(&mut self) {
        self.lock.raw.release(1);
    }
}

impl<T: ?Sized + fmt::Debug, F: Flavour> fmt::Debug for RwLockReadGuard<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to an [`RwLock`]'s value; dropping it releases it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized, F: Flavour = Shared> {
    lock: &'a RwLock<T, F>,
    /// It hands out `&mut T`: Send and Sync only as `&mut T` is.
    _marker: PhantomData<&'a mut T>,
}

impl<T: ?Sized, F: Flavour> Deref for RwLockWriteGuard<'_, T, F> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a writer holds every permit, so no other reference to
        // the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized, F: Flavour> DerefMut for RwLockWriteGuard<'_, T, F> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized, F: Flavour> Drop for RwLockWriteGuard<'_, T, F> {
    fn drop(&mut self) {
        self.lock.raw.release(MAX_READERS);
    }
}

impl<T: ?Sized + fmt::Debug, F: Flavour> fmt::Debug for RwLockWriteGuard<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
