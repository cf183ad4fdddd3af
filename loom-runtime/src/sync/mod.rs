//! Fiber-aware synchronisation: locks, counters and channels whose waiting
//! suspends only the calling fiber, never its loop's thread.
//!
//! Every primitive comes in two flavours:
//!
//! - the types at this level ([`Shared`] flavour) work between fibers of
//!   any loops and plain threads, and are `Send + Sync` when what they hold
//!   is `Send`; a fiber woken from another loop is woken through that
//!   loop's mailbox, without allocating;
//! - [`local`] has the same types for fibers of one loop ([`Local`]
//!   flavour): no atomics, no locks, `!Send`.
//!
//! Waiting honours cancellation: a cancelled fiber's wait returns the
//! cancellation error (see [`crate::fiber::is_cancelled`]) and leaves the
//! primitive as if it had never waited. It honours the fiber's call-tree
//! deadline ([`crate::time::with_deadline`]) the same way, failing with
//! `TimedOut` (channels: the `Timeout` variants); a call that need not
//! wait succeeds whatever the time. `Mutex`, `RwLock` and `Semaphore`
//! hand a freed resource straight to the oldest waiter (FIFO, so a fiber
//! that unlocks and relocks cannot starve the others); the other
//! primitives wake their waiters to re-check.

pub(crate) mod flavour;
pub(crate) mod waiter;

pub use flavour::{Flavour, Local, Shared};

pub mod local;

// ---- locks and counters (mutex.rs, rwlock.rs, condvar.rs, semaphore.rs,
// wait_group.rs, barrier.rs) ----
mod barrier;
mod condvar;
mod mutex;
mod rwlock;
mod semaphore;
mod wait_group;

pub mod flavoured {
    //! The locks and counters, generic over their [`Flavour`](super::Flavour): for code
    //! that works with either. `loom::sync::Mutex<T>` is
    //! `flavoured::Mutex<T, Shared>`, `loom::sync::local::Mutex<T>` is
    //! `flavoured::Mutex<T, Local>`.
    //!
    //! Those names are aliases rather than a default type parameter because
    //! Rust does not use defaults to infer a type: with `Mutex<T, F =
    //! Shared>`, a plain `Mutex::new(0)` would not compile.
    pub use super::barrier::Barrier;
    pub use super::condvar::Condvar;
    pub use super::mutex::{Mutex, MutexGuard};
    pub use super::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
    pub use super::semaphore::{Semaphore, SemaphorePermit};
    pub use super::wait_group::WaitGroup;
}

pub use barrier::BarrierWaitResult;

/// A fiber-aware mutual-exclusion lock, for fibers of any loop and plain
/// threads: see [`flavoured::Mutex`].
pub type Mutex<T> = flavoured::Mutex<T, Shared>;
/// Holds a [`Mutex`] locked: see [`flavoured::MutexGuard`].
pub type MutexGuard<'a, T> = flavoured::MutexGuard<'a, T, Shared>;
/// A fiber-aware condition variable, for fibers of any loop and plain
/// threads: see [`flavoured::Condvar`].
pub type Condvar = flavoured::Condvar<Shared>;
/// A fiber-aware reader-writer lock, for fibers of any loop and plain
/// threads: see [`flavoured::RwLock`].
pub type RwLock<T> = flavoured::RwLock<T, Shared>;
/// Shared access to an [`RwLock`]: see [`flavoured::RwLockReadGuard`].
pub type RwLockReadGuard<'a, T> = flavoured::RwLockReadGuard<'a, T, Shared>;
/// Exclusive access to an [`RwLock`]: see [`flavoured::RwLockWriteGuard`].
pub type RwLockWriteGuard<'a, T> = flavoured::RwLockWriteGuard<'a, T, Shared>;
/// A fiber-aware counting semaphore, for fibers of any loop and plain
/// threads: see [`flavoured::Semaphore`].
pub type Semaphore = flavoured::Semaphore<Shared>;
/// Permits from a [`Semaphore`]: see [`flavoured::SemaphorePermit`].
pub type SemaphorePermit<'a> = flavoured::SemaphorePermit<'a, Shared>;
/// Go's `sync.WaitGroup`, for fibers of any loop and plain threads: see
/// [`flavoured::WaitGroup`].
pub type WaitGroup = flavoured::WaitGroup<Shared>;
/// A reusable barrier, for fibers of any loop and plain threads: see
/// [`flavoured::Barrier`].
pub type Barrier = flavoured::Barrier<Shared>;
// ---- end of locks and counters ----

// ---- channels (chan.rs, oneshot.rs, mpsc.rs, mpmc.rs, select.rs) ----
mod chan;
mod chan_error;
pub mod mpmc;
pub mod mpsc;
pub mod oneshot;
mod select;
pub use select::{Select, Selectable};
// ---- end of channels ----
