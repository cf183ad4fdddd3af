//! Multi-producer, single-consumer channels, shaped like `std::sync::mpsc`.
//!
//! [`channel`] makes a bounded channel: its buffer is allocated when the
//! channel is made, so sending never allocates, and a sender waits
//! (suspending only its fiber) while the channel is full. [`unbounded`]
//! makes one whose buffer grows, so sending never waits. The
//! [`Receiver`] waits while the channel is empty.
//!
//! Disconnection works as in std: once every [`Sender`] is gone, the
//! receiver still gets the messages left in the channel, then
//! [`RecvError::Disconnected`]; once the receiver is gone, sends fail and
//! hand their value back, and the messages still buffered are dropped.
//!
//! These types work between fibers of any loops and plain threads (the
//! [`Shared`] flavour); [`crate::sync::local::mpsc`] has the same for
//! fibers of one loop, without atomics. A fiber cancelled while it waits
//! gets a `Cancelled` error, whose [`io::Error`](std::io::Error) form is
//! the runtime's cancellation error.
//!
//! # Examples
//!
//! ```
//! use loom::sync::mpsc;
//!
//! loom::Runtime::builder().build()?.run(|| {
//!     let (tx, rx) = mpsc::channel(16);
//!     for id in 0..3 {
//!         let tx = tx.clone();
//!         loom::spawn(move || tx.send(id).unwrap());
//!     }
//!     drop(tx);
//!     let mut got: Vec<i32> = rx.iter().collect();
//!     got.sort();
//!     assert_eq!(got, [0, 1, 2]);
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Between loops (a fiber woken from another loop is woken through its
//! loop's mailbox, without allocating):
//!
//! ```
//! use loom::sync::mpsc;
//!
//! loom::Runtime::builder().threads(2).build()?.run(|| {
//!     let (tx, rx) = mpsc::channel(64);
//!     let producer = loom::spawn_on(1, move || {
//!         for i in 1..=100u64 {
//!             tx.send(i).unwrap();
//!         }
//!     });
//!     assert_eq!(rx.iter().sum::<u64>(), 5050);
//!     producer.join().unwrap();
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use super::chan::{self, Chan, Queue, Rx, Tx, deadline_after};
use super::flavour::{Flavour, Shared};

pub use super::chan_error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

/// Creates a bounded channel that holds up to `capacity` messages.
///
/// The buffer is allocated here, whole: sending never allocates.
///
/// # Panics
///
/// If `capacity` is 0 (a rendezvous channel is not supported), or if the
/// buffer cannot be allocated.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = loom::sync::mpsc::channel(1);
///     let producer = loom::spawn(move || {
///         for i in 0..3 {
///             tx.send(i).unwrap(); // waits while the channel is full
///         }
///     });
///     assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
///     producer.join().unwrap();
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    bounded_in(capacity)
}

/// Creates a channel with no limit: its buffer grows as needed, so
/// sending never waits (and may allocate).
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::mpsc::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap();
/// }
/// assert_eq!(rx.try_iter().count(), 1000);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    unbounded_in()
}

/// A bounded channel of either flavour.
#[track_caller]
pub(crate) fn bounded_in<T, F: Flavour>(capacity: usize) -> (Sender<T, F>, Receiver<T, F>) {
    assert!(
        capacity > 0,
        "loom: a bounded channel needs a capacity of at least 1"
    );
    wrap(chan::channel(Queue::bounded(capacity)))
}

/// An unbounded channel of either flavour.
pub(crate) fn unbounded_in<T, F: Flavour>() -> (Sender<T, F>, Receiver<T, F>) {
    wrap(chan::channel(Queue::unbounded()))
}

fn wrap<T, F: Flavour>(
    (tx, rx): (Tx<Queue<T>, F>, Rx<Queue<T>, F>),
) -> (Sender<T, F>, Receiver<T, F>) {
    (Sender { tx }, Receiver { rx })
}

/// The sending half of an [`mpsc`](self) or [`mpmc`](super::mpmc)
/// channel. Clone it for more producers; the channel is disconnected for
/// the receivers once every clone is gone.
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::mpsc::unbounded();
/// let tx2 = tx.clone();
/// tx.send(1).unwrap();
/// tx2.send(2).unwrap();
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Sender<T, F: Flavour = Shared> {
    tx: Tx<Queue<T>, F>,
}

impl<T, F: Flavour> Sender<T, F> {
    /// Sends `value`, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] once every receiver is gone;
    /// [`SendError::Cancelled`] if the calling fiber is cancelled while it
    /// waits; [`SendError::Timeout`] if its call-tree deadline
    /// ([`crate::time::with_deadline`]) passes while it waits. Each hands
    /// `value` back.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (tx, rx) = loom::sync::mpsc::channel(4);
    ///     tx.send("hello").unwrap();
    ///     assert_eq!(rx.recv(), Ok("hello"));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.tx
            .send(value, None)
            .map_err(SendTimeoutError::without_timeout)
    }

    /// Sends `value` if there is room now; never waits.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`], with
    /// `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loom::sync::mpsc::{self, TrySendError};
    ///
    /// let (tx, rx) = mpsc::channel(1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
    /// drop(rx);
    /// assert!(matches!(tx.try_send(3), Err(TrySendError::Disconnected(3))));
    /// ```
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(value)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`], `Disconnected` or `Cancelled`, with
    /// `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (tx, rx) = loom::sync::mpsc::channel(1);
    ///     tx.send_timeout(1, Duration::from_millis(10)).unwrap();
    ///     // Full: this one gives up.
    ///     assert!(tx.send_timeout(2, Duration::from_millis(10)).is_err());
    ///     assert_eq!(rx.recv(), Ok(1));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.tx.send(value, deadline_after(timeout))
    }
}

impl<T, F: Flavour> Clone for Sender<T, F> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
        }
    }
}

impl<T, F: Flavour> fmt::Debug for Sender<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The receiving half of an [`mpsc`](self) channel. Not `Clone`: use
/// [`mpmc`](super::mpmc) for several consumers.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = loom::sync::mpsc::channel(8);
///     loom::spawn(move || {
///         for i in 1..=3 {
///             tx.send(i).unwrap();
///         }
///     });
///     // Ends when the sender is gone and the channel is drained.
///     assert_eq!(rx.into_iter().sum::<i32>(), 6);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Receiver<T, F: Flavour = Shared> {
    rx: Rx<Queue<T>, F>,
}

impl<T, F: Flavour> Receiver<T, F> {
    /// Receives the oldest message, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once every sender is gone and the
    /// channel is empty; [`RecvError::Cancelled`] if the calling fiber is
    /// cancelled while it waits; [`RecvError::Timeout`] if its call-tree
    /// deadline ([`crate::time::with_deadline`]) passes while it waits.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (tx, rx) = loom::sync::mpsc::channel(1);
    ///     loom::spawn(move || tx.send(42).unwrap());
    ///     assert_eq!(rx.recv(), Ok(42));
    ///     assert!(rx.recv().is_err()); // the sender is gone
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.rx
            .recv(None)
            .map_err(RecvTimeoutError::without_timeout)
    }

    /// Receives the oldest message if there is one; never waits.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once
    /// every sender is gone and the channel is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use loom::sync::mpsc::{self, TryRecvError};
    ///
    /// let (tx, rx) = mpsc::channel(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    /// Receives the oldest message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], `Disconnected` or `Cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use loom::sync::mpsc::{self, RecvTimeoutError};
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (tx, rx) = mpsc::channel::<u32>(1);
    ///     let wait = Duration::from_millis(5);
    ///     assert_eq!(rx.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
    ///     tx.send(1).unwrap();
    ///     assert_eq!(rx.recv_timeout(wait), Ok(1));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.rx.recv(deadline_after(timeout))
    }

    /// An iterator that waits for each message and ends once the channel
    /// is disconnected (or the calling fiber is cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpsc::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T, F> {
        Iter { chan: &self.rx }
    }

    /// An iterator over the messages there now; never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpsc::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(rx.try_iter().next(), None); // tx is still there
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T, F> {
        TryIter { chan: &self.rx }
    }

    /// How many messages wait in the channel.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpsc::channel(4);
    /// tx.send(()).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message waits in the channel.
    ///
    /// ```
    /// let (_tx, rx) = loom::sync::mpsc::channel::<()>(4);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn chan(&self) -> &Chan<Queue<T>, F> {
        &self.rx
    }

    /// The counted handle, for mpmc's receiver.
    pub(crate) fn into_rx(self) -> Rx<Queue<T>, F> {
        self.rx
    }
}

impl<T, F: Flavour> fmt::Debug for Receiver<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<'a, T, F: Flavour> IntoIterator for &'a Receiver<T, F> {
    type Item = T;
    type IntoIter = Iter<'a, T, F>;

    fn into_iter(self) -> Iter<'a, T, F> {
        self.iter()
    }
}

impl<T, F: Flavour> IntoIterator for Receiver<T, F> {
    type Item = T;
    type IntoIter = IntoIter<T, F>;

    fn into_iter(self) -> IntoIter<T, F> {
        IntoIter { rx: self.rx }
    }
}

/// Waits for each message of a channel; ends at disconnection (or
/// cancellation). From [`Receiver::iter`].
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::mpsc::unbounded();
/// tx.send('a').unwrap();
/// drop(tx);
/// let mut iter = rx.iter();
/// assert_eq!(iter.next(), Some('a'));
/// assert_eq!(iter.next(), None);
/// ```
pub struct Iter<'a, T, F: Flavour = Shared> {
    chan: &'a Chan<Queue<T>, F>,
}

impl<T, F: Flavour> Iterator for Iter<'_, T, F> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.chan.recv(None).ok()
    }
}

/// The messages of a channel that are there now. From
/// [`Receiver::try_iter`].
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::mpsc::unbounded();
/// tx.send(1).unwrap();
/// assert_eq!(rx.try_iter().sum::<i32>(), 1);
/// ```
pub struct TryIter<'a, T, F: Flavour = Shared> {
    chan: &'a Chan<Queue<T>, F>,
}

impl<T, F: Flavour> Iterator for TryIter<'_, T, F> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.chan.try_recv().ok()
    }
}

/// Waits for each message of a channel it owns the receiver of; ends at
/// disconnection (or cancellation). From `Receiver::into_iter`.
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::mpsc::unbounded();
/// tx.send(1).unwrap();
/// drop(tx);
/// let all: Vec<i32> = rx.into_iter().collect();
/// assert_eq!(all, [1]);
/// ```
pub struct IntoIter<T, F: Flavour = Shared> {
    rx: Rx<Queue<T>, F>,
}

impl<T, F: Flavour> IntoIter<T, F> {
    pub(crate) fn new(rx: Rx<Queue<T>, F>) -> IntoIter<T, F> {
        IntoIter { rx }
    }
}

impl<T, F: Flavour> Iterator for IntoIter<T, F> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.recv(None).ok()
    }
}

impl<T, F: Flavour> Iter<'_, T, F> {
    pub(crate) fn new(chan: &Chan<Queue<T>, F>) -> Iter<'_, T, F> {
        Iter { chan }
    }
}

impl<T, F: Flavour> TryIter<'_, T, F> {
    pub(crate) fn new(chan: &Chan<Queue<T>, F>) -> TryIter<'_, T, F> {
        TryIter { chan }
    }
}

macro_rules! debug_opaque {
    ($($name:ident),*) => {$(
        impl<T, F: Flavour> fmt::Debug for $name<'_, T, F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}
debug_opaque!(Iter, TryIter);

impl<T, F: Flavour> fmt::Debug for IntoIter<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter").finish_non_exhaustive()
    }
}
