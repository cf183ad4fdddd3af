//! Multi-producer, multi-consumer channels: [`mpsc`](super::mpsc) with a
//! [`Receiver`] that can be cloned. Each message goes to exactly one
//! receiver; receivers waiting are served oldest first.
//!
//! The channel is disconnected for the senders once every receiver is
//! gone (the messages left are dropped then), and for the receivers once
//! every sender is gone and the messages are drained.
//!
//! # Examples
//!
//! A pool of workers sharing one queue:
//!
//! ```
//! use loom::sync::mpmc;
//!
//! loom::Runtime::builder().build()?.run(|| {
//!     let (jobs, queue) = mpmc::channel(8);
//!     let workers: Vec<_> = (0..3)
//!         .map(|_| {
//!             let queue = queue.clone();
//!             loom::spawn(move || queue.iter().map(|job: u64| job * 2).sum::<u64>())
//!         })
//!         .collect();
//!     drop(queue);
//!     for job in 1..=10 {
//!         jobs.send(job).unwrap();
//!     }
//!     drop(jobs);
//!     let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
//!     assert_eq!(total, 110);
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use super::chan::{Chan, Queue, Rx, deadline_after};
use super::flavour::{Flavour, Shared};

pub use super::chan_error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use super::mpsc::{IntoIter, Iter, Sender, TryIter};

/// Creates a bounded channel that holds up to `capacity` messages; see
/// [`mpsc::channel`](super::mpsc::channel).
///
/// # Panics
///
/// If `capacity` is 0, or if the buffer cannot be allocated.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = loom::sync::mpmc::channel(2);
///     let rx2 = rx.clone();
///     tx.send(1).unwrap();
///     tx.send(2).unwrap();
///     assert_eq!(rx.recv().unwrap() + rx2.recv().unwrap(), 3);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    bounded_in(capacity)
}

/// Creates a channel with no limit; see
/// [`mpsc::unbounded`](super::mpsc::unbounded).
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::mpmc::unbounded();
/// tx.send("job").unwrap();
/// assert_eq!(rx.clone().try_recv(), Ok("job"));
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    unbounded_in()
}

/// A bounded channel of either flavour.
#[track_caller]
pub(crate) fn bounded_in<T, F: Flavour>(capacity: usize) -> (Sender<T, F>, Receiver<T, F>) {
    let (tx, rx) = super::mpsc::bounded_in(capacity);
    (tx, Receiver { rx: rx.into_rx() })
}

/// An unbounded channel of either flavour.
pub(crate) fn unbounded_in<T, F: Flavour>() -> (Sender<T, F>, Receiver<T, F>) {
    let (tx, rx) = super::mpsc::unbounded_in();
    (tx, Receiver { rx: rx.into_rx() })
}

/// A receiving half of an [`mpmc`](self) channel. Clone it for more
/// consumers; each message goes to one of them.
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::mpmc::unbounded();
/// let rx2 = rx.clone();
/// tx.send(1).unwrap();
/// assert_eq!(rx2.try_recv(), Ok(1));
/// assert!(rx.try_recv().is_err()); // taken by rx2
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
    ///     let (tx, rx) = loom::sync::mpmc::channel(1);
    ///     let rx2 = rx.clone();
    ///     let other = loom::spawn(move || rx2.recv());
    ///     tx.send(7).unwrap();
    ///     assert_eq!(other.join().unwrap(), Ok(7));
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
    /// let (tx, rx) = loom::sync::mpmc::channel(1);
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert!(rx.try_recv().is_err());
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
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (_tx, rx) = loom::sync::mpmc::channel::<u8>(1);
    ///     assert!(rx.recv_timeout(Duration::from_millis(2)).is_err());
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
    /// let (tx, rx) = loom::sync::mpmc::unbounded();
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [1]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T, F> {
        Iter::new(&self.rx)
    }

    /// An iterator over the messages there now; never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpmc::unbounded();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1]);
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T, F> {
        TryIter::new(&self.rx)
    }

    /// How many messages wait in the channel.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpmc::channel(4);
    /// tx.send(()).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message waits in the channel.
    ///
    /// ```
    /// let (_tx, rx) = loom::sync::mpmc::channel::<()>(4);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn chan(&self) -> &Chan<Queue<T>, F> {
        &self.rx
    }
}

impl<T, F: Flavour> Clone for Receiver<T, F> {
    fn clone(&self) -> Self {
        Receiver {
            rx: self.rx.clone(),
        }
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
        IntoIter::new(self.rx)
    }
}
