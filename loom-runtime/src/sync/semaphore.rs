//! A counting semaphore, and the FIFO permit queue [`Mutex`] and [`RwLock`]
//! are built on.
//!
//! Permits are handed over, not merely announced: a release gives them to
//! the oldest requests it can satisfy while it holds the lock, and only then
//! wakes them. A woken fiber therefore never finds its permits taken by one
//! that did not wait — without that, a fiber that unlocks and relocks
//! without switching in between would starve every waiter forever, since
//! fibers only switch when they block.
//!
//! [`Mutex`]: super::Mutex
//! [`RwLock`]: super::RwLock

use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::flavour::{Flavour, RawLock, Shared};
use super::waiter::{Interrupted, WaitList, Waiter, Wakes};
use crate::list::{Link, List, container_of};

/// The permit queue: a count and the requests waiting for it, oldest first.
pub(super) struct RawSemaphore<F: Flavour> {
    state: F::Lock<State>,
}

struct State {
    permits: usize,
    /// The oldest request, kept apart from `queue` because a release must
    /// read its need before deciding to pop it (`List` cannot peek). `None`
    /// only when `queue` is empty too.
    head: Option<NonNull<Request>>,
    /// The younger requests.
    queue: List,
}

// SAFETY: `head` and `queue` only point at requests linked while the
// primitive's lock is held, each valid until unlinked (its owner's promise
// in `acquire`); a Shared primitive's lock makes every access exclusive.
unsafe impl Send for State {}

/// One waiting `acquire`, in its caller's frame.
struct Request {
    link: Link,
    need: usize,
    /// Holds just this request's waiter, so a release can notify exactly
    /// the requests it granted.
    wake: WaitList,
}

impl State {
    fn try_take(&mut self, need: usize) -> bool {
        // Taking past a queued request would starve it.
        let free = self.head.is_none() && self.permits >= need;
        if free {
            self.permits -= need;
        }
        free
    }

    /// # Safety
    /// `request` is in no queue and stays in place until [`State::unlink`]
    /// took it out again or [`State::grant`] granted it.
    unsafe fn push(&mut self, request: &Request) {
        if self.head.is_none() {
            self.head = Some(NonNull::from(request));
        } else {
            // SAFETY: forwarded from this function's contract.
            unsafe { self.queue.push_back(&request.link) };
        }
    }

    /// # Safety
    /// `request` was pushed here and not granted.
    unsafe fn unlink(&mut self, request: &Request) {
        if self.head == Some(NonNull::from(request)) {
            self.head = self.pop_queue();
        } else {
            // SAFETY: contract: it is in `queue` (it is not the head).
            unsafe { self.queue.remove(&request.link) };
        }
    }

    fn pop_queue(&self) -> Option<NonNull<Request>> {
        let link = self.queue.pop_front();
        if link.is_null() {
            return None;
        }
        NonNull::new(container_of!(link, Request, link).cast_mut())
    }

    /// Hands permits to the oldest requests while they fit; the caller
    /// delivers the wake-ups after releasing the lock.
    fn grant(&mut self) -> Wakes {
        let wakes = Wakes::new();
        while let Some(head) = self.head {
            // SAFETY: a queued request stays in place until unlinked or
            // granted (the `push` contract), and this is under the lock.
            let request = unsafe { head.as_ref() };
            if request.need > self.permits {
                break;
            }
            self.permits -= request.need;
            self.head = self.pop_queue();
            wakes.append(request.wake.notify_one());
        }
        wakes
    }
}

impl<F: Flavour> RawSemaphore<F> {
    pub(super) fn new(permits: usize) -> Self {
        RawSemaphore {
            state: F::Lock::new(State {
                permits,
                head: None,
                queue: List::new(),
            }),
        }
    }

    pub(super) fn try_acquire(&self, need: usize) -> bool {
        self.state.with(|state| state.try_take(need))
    }

    /// Takes `need` permits, waiting behind older requests.
    #[track_caller]
    pub(super) fn acquire(
        &self,
        need: usize,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> io::Result<()> {
        if self.try_acquire(need) {
            return Ok(());
        }
        let waiter = Waiter::for_current(F::CROSS_THREAD, what);
        waiter
            .refuse_if_cancelled()
            .map_err(Interrupted::into_io_error)?;
        let request = Request {
            link: Link::new(),
            need,
            wake: WaitList::new(),
        };
        let queued = self.state.with(|state| {
            if state.try_take(need) {
                return false;
            }
            // SAFETY: `request` and `waiter` stay in this frame until
            // unlinked below, or granted and delivered (waited for below).
            unsafe {
                request.wake.push(&waiter);
                state.push(&request);
            }
            true
        });
        if !queued {
            return Ok(());
        }
        // Only a grant notifies the waiter, so waking means owning them.
        let Err(interrupted) = waiter.sleep(deadline) else {
            return Ok(());
        };
        let withdrawn = self.state.with(|state| {
            if !request.wake.remove(&waiter) {
                return None;
            }
            // SAFETY: not notified, so not granted: still queued here.
            unsafe { state.unlink(&request) };
            // A large request leaving the head may let smaller ones through.
            Some(state.grant())
        });
        if let Some(wakes) = withdrawn {
            wakes.deliver();
            return Err(interrupted.into_io_error());
        }
        // Granted in the same turn as interrupted; the grant is in flight.
        waiter.wait_delivered();
        match interrupted {
            // The permits came in time after all.
            Interrupted::TimedOut => Ok(()),
            // Cancellation wins; the permits move on (as stack permits do).
            Interrupted::Cancelled => {
                self.release(need);
                Err(interrupted.into_io_error())
            }
        }
    }

    /// Returns `count` permits and grants them to waiting requests.
    ///
    /// # Panics
    /// If the count would overflow `usize`.
    pub(super) fn release(&self, count: usize) {
        let wakes = self.state.with(|state| {
            let permits = state.permits.checked_add(count)?;
            state.permits = permits;
            Some(state.grant())
        });
        // Outside the lock: a panic inside would leave a Local lock busy.
        let Some(wakes) = wakes else {
            panic!("loom: a semaphore's permit count overflowed usize");
        };
        wakes.deliver();
    }

    pub(super) fn available(&self) -> usize {
        self.state.with(|state| state.permits)
    }
}

/// The deadline `timeout` from now; `None` (never) if that overflows.
pub(super) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A counting semaphore whose waiting suspends only the calling fiber (or,
/// for the [`Shared`] flavour, blocks a thread outside the runtime).
///
/// Fair: permits go to waiting `acquire`s in arrival order, and a request
/// for many permits at the head of the queue holds back smaller ones behind
/// it until enough are free. [`Semaphore::try_acquire`] never jumps the
/// queue either.
///
/// Use [`loom::sync::local::Semaphore`](super::local::Semaphore) for fibers
/// of one loop.
///
/// # Examples
///
/// At most two fibers in the critical section at once:
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use loom::sync::local::Semaphore;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let slots = Rc::new(Semaphore::new(2));
///     let fibers: Vec<_> = (0..6)
///         .map(|_| {
///             let slots = slots.clone();
///             loom::spawn(move || {
///                 let _permit = slots.acquire()?;
///                 loom::time::sleep(Duration::from_millis(1))
///             })
///         })
///         .collect();
///     for fiber in fibers {
///         fiber.join().unwrap()?;
///     }
///     assert_eq!(slots.available_permits(), 2);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Semaphore<F: Flavour = Shared> {
    raw: RawSemaphore<F>,
}

impl<F: Flavour> Semaphore<F> {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Self {
        Semaphore {
            raw: RawSemaphore::new(permits),
        }
    }

    /// Waits for a permit; dropping the [`SemaphorePermit`] returns it.
    ///
    /// # Errors
    /// The cancellation error ([`crate::fiber::is_cancelled`]) if the
    /// calling fiber is cancelled while waiting, `TimedOut` if its
    /// call-tree deadline ([`crate::time::with_deadline`]) passes first; it
    /// then holds no permit.
    ///
    /// # Panics
    /// A [`Local`](super::Local) semaphore waited on outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let semaphore = loom::sync::Semaphore::new(1);
    ///     let permit = semaphore.acquire()?;
    ///     assert_eq!(semaphore.available_permits(), 0);
    ///     drop(permit);
    ///     assert_eq!(semaphore.available_permits(), 1);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> io::Result<SemaphorePermit<'_, F>> {
        self.acquire_many(1)
    }

    /// Waits for `count` permits at once. Waiting at the head of the queue,
    /// it holds back later requests; a `count` the semaphore never reaches
    /// waits forever (or until cancelled).
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let semaphore = loom::sync::Semaphore::new(5);
    ///     let three = semaphore.acquire_many(3)?;
    ///     assert_eq!(three.num_permits(), 3);
    ///     assert_eq!(semaphore.available_permits(), 2);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn acquire_many(&self, count: usize) -> io::Result<SemaphorePermit<'_, F>> {
        self.raw.acquire(count, None, "Semaphore::acquire")?;
        Ok(self.permit(count))
    }

    /// A permit if one is free and nobody is waiting; never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let semaphore = loom::sync::Semaphore::new(1);
    /// let permit = semaphore.try_acquire().unwrap();
    /// assert!(semaphore.try_acquire().is_none());
    /// drop(permit);
    /// assert!(semaphore.try_acquire().is_some());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_, F>> {
        self.raw.try_acquire(1).then(|| self.permit(1))
    }

    /// [`Semaphore::acquire`], giving up after `timeout`.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the time is up, and as
    /// [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let semaphore = loom::sync::Semaphore::new(0);
    ///     let err = semaphore.acquire_timeout(Duration::from_millis(5)).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> io::Result<SemaphorePermit<'_, F>> {
        let deadline = deadline_after(timeout);
        self.raw
            .acquire(1, deadline, "Semaphore::acquire_timeout")?;
        Ok(self.permit(1))
    }

    /// Adds `count` permits, waking the requests they satisfy.
    ///
    /// # Panics
    /// If the number of permits would overflow `usize`.
    ///
    /// # Examples
    ///
    /// ```
    /// let semaphore = loom::sync::Semaphore::new(0);
    /// semaphore.add_permits(2);
    /// assert_eq!(semaphore.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, count: usize) {
        self.raw.release(count);
    }

    /// The permits free right now (a snapshot: others may take them).
    ///
    /// # Examples
    ///
    /// ```
    /// let semaphore = loom::sync::local::Semaphore::new(3);
    /// let _two = semaphore.try_acquire().zip(semaphore.try_acquire());
    /// assert_eq!(semaphore.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.raw.available()
    }

    fn permit(&self, count: usize) -> SemaphorePermit<'_, F> {
        SemaphorePermit {
            semaphore: self,
            count,
        }
    }
}

impl<F: Flavour> fmt::Debug for Semaphore<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .finish_non_exhaustive()
    }
}

/// Permits taken from a [`Semaphore`]; dropping it gives them back.
#[must_use = "the permit is returned as soon as it is dropped"]
pub struct SemaphorePermit<'a, F: Flavour = Shared> {
    semaphore: &'a Semaphore<F>,
    count: usize,
}

impl<F: Flavour> SemaphorePermit<'_, F> {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.count
    }

    /// Keeps the permits out of the semaphore for good.
    ///
    /// # Examples
    ///
    /// ```
    /// let semaphore = loom::sync::Semaphore::new(1);
    /// semaphore.try_acquire().unwrap().forget();
    /// assert_eq!(semaphore.available_permits(), 0);
    /// ```
    pub fn forget(mut self) {
        self.count = 0;
    }
}

impl<F: Flavour> Drop for SemaphorePermit<'_, F> {
    fn drop(&mut self) {
        if self.count > 0 {
            self.semaphore.raw.release(self.count);
        }
    }
}

impl<F: Flavour> fmt::Debug for SemaphorePermit<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.count)
            .finish()
    }
}
