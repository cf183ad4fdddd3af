//! The [`Local`](super::Local) flavour of every primitive: for fibers of
//! one loop, with no atomics and no locks; `!Send`.

// ---- locks and counters ----
pub use super::BarrierWaitResult;

/// A mutual-exclusion lock for fibers of one loop: see
/// [`flavoured::Mutex`](super::flavoured::Mutex).
pub type Mutex<T> = super::flavoured::Mutex<T, super::Local>;
/// Holds a [`Mutex`] locked.
pub type MutexGuard<'a, T> = super::flavoured::MutexGuard<'a, T, super::Local>;
/// A condition variable for fibers of one loop: see
/// [`flavoured::Condvar`](super::flavoured::Condvar).
pub type Condvar = super::flavoured::Condvar<super::Local>;
/// A reader-writer lock for fibers of one loop: see
/// [`flavoured::RwLock`](super::flavoured::RwLock).
pub type RwLock<T> = super::flavoured::RwLock<T, super::Local>;
/// Shared access to an [`RwLock`].
pub type RwLockReadGuard<'a, T> = super::flavoured::RwLockReadGuard<'a, T, super::Local>;
/// Exclusive access to an [`RwLock`].
pub type RwLockWriteGuard<'a, T> = super::flavoured::RwLockWriteGuard<'a, T, super::Local>;
/// A counting semaphore for fibers of one loop: see
/// [`flavoured::Semaphore`](super::flavoured::Semaphore).
pub type Semaphore = super::flavoured::Semaphore<super::Local>;
/// Permits from a [`Semaphore`].
pub type SemaphorePermit<'a> = super::flavoured::SemaphorePermit<'a, super::Local>;
/// Go's `sync.WaitGroup` for fibers of one loop: see
/// [`flavoured::WaitGroup`](super::flavoured::WaitGroup).
pub type WaitGroup = super::flavoured::WaitGroup<super::Local>;
/// A reusable barrier for fibers of one loop: see
/// [`flavoured::Barrier`](super::flavoured::Barrier).
pub type Barrier = super::flavoured::Barrier<super::Local>;
// ---- end of locks and counters ----

// ---- channels ----
/// [`mpsc`](crate::sync::mpsc) channels for fibers of one loop.
///
/// # Examples
///
/// ```
/// use loom::sync::local::mpsc;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = mpsc::channel(4);
///     let producer = loom::spawn(move || {
///         for i in 0..10 {
///             tx.send(i).unwrap();
///         }
///     });
///     assert_eq!(rx.iter().sum::<i32>(), 45);
///     producer.join().unwrap();
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub mod mpsc {
    use crate::sync::{Local, mpsc};

    pub use mpsc::{
        RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
    };

    /// [`mpsc::Sender`] for fibers of one loop.
    pub type Sender<T> = mpsc::Sender<T, Local>;
    /// [`mpsc::Receiver`] for fibers of one loop.
    pub type Receiver<T> = mpsc::Receiver<T, Local>;
    /// [`mpsc::Iter`] for fibers of one loop.
    pub type Iter<'a, T> = mpsc::Iter<'a, T, Local>;
    /// [`mpsc::TryIter`] for fibers of one loop.
    pub type TryIter<'a, T> = mpsc::TryIter<'a, T, Local>;
    /// [`mpsc::IntoIter`] for fibers of one loop.
    pub type IntoIter<T> = mpsc::IntoIter<T, Local>;

    /// [`mpsc::channel`] for fibers of one loop.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::local::mpsc::channel(1);
    /// tx.try_send(1).unwrap();
    /// assert!(tx.try_send(2).is_err());
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    #[track_caller]
    pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
        mpsc::bounded_in(capacity)
    }

    /// [`mpsc::unbounded`] for fibers of one loop.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::local::mpsc::unbounded();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
        mpsc::unbounded_in()
    }
}

/// [`mpmc`](crate::sync::mpmc) channels for fibers of one loop.
///
/// # Examples
///
/// ```
/// use loom::sync::local::mpmc;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = mpmc::channel(4);
///     let workers: Vec<_> = (0..2)
///         .map(|_| {
///             let rx = rx.clone();
///             loom::spawn(move || rx.iter().count())
///         })
///         .collect();
///     for i in 0..10 {
///         tx.send(i).unwrap();
///     }
///     drop(tx);
///     let handled: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
///     assert_eq!(handled, 10);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub mod mpmc {
    use crate::sync::{Local, mpmc};

    pub use mpmc::{
        RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
    };

    /// [`mpmc::Sender`] for fibers of one loop.
    pub type Sender<T> = mpmc::Sender<T, Local>;
    /// [`mpmc::Receiver`] for fibers of one loop.
    pub type Receiver<T> = mpmc::Receiver<T, Local>;
    /// [`mpmc::Iter`] for fibers of one loop.
    pub type Iter<'a, T> = mpmc::Iter<'a, T, Local>;
    /// [`mpmc::TryIter`] for fibers of one loop.
    pub type TryIter<'a, T> = mpmc::TryIter<'a, T, Local>;
    /// [`mpmc::IntoIter`] for fibers of one loop.
    pub type IntoIter<T> = mpmc::IntoIter<T, Local>;

    /// [`mpmc::channel`] for fibers of one loop.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::local::mpmc::channel(2);
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.clone().try_recv(), Ok(1));
    /// ```
    #[track_caller]
    pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
        mpmc::bounded_in(capacity)
    }

    /// [`mpmc::unbounded`] for fibers of one loop.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::local::mpmc::unbounded();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
        mpmc::unbounded_in()
    }
}

/// [`oneshot`](crate::sync::oneshot) channels for fibers of one loop.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = loom::sync::local::oneshot::channel();
///     loom::spawn(move || tx.send(std::rc::Rc::new(5)).unwrap());
///     assert_eq!(*rx.recv().unwrap(), 5);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub mod oneshot {
    use crate::sync::{Local, oneshot};

    pub use oneshot::{RecvError, RecvTimeoutError, TryRecvError};

    /// [`oneshot::Sender`] for fibers of one loop.
    pub type Sender<T> = oneshot::Sender<T, Local>;
    /// [`oneshot::Receiver`] for fibers of one loop.
    pub type Receiver<T> = oneshot::Receiver<T, Local>;

    /// [`oneshot::channel`] for fibers of one loop.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::local::oneshot::channel();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
        oneshot::channel_in()
    }
}

/// [`Select`](crate::sync::Select) over receivers of local channels.
///
/// ```
/// use loom::sync::local::{Select, mpsc};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = mpsc::channel(1);
///     loom::spawn(move || tx.send(1).unwrap());
///     let mut select = Select::new();
///     let index = select.recv(&rx);
///     assert_eq!(select.ready()?, index);
///     assert_eq!(rx.try_recv(), Ok(1));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub type Select<'a> = crate::sync::Select<'a, crate::sync::Local>;
// ---- end of channels ----
