//! One-shot channels: one value, sent once, received once — a reply
//! slot for a request, or the result of some work.
//!
//! Sending never waits. If the [`Sender`] is dropped without sending, the
//! receiver gets [`RecvError::Disconnected`]; if the [`Receiver`] is gone,
//! [`Sender::send`] hands the value back.
//!
//! # Examples
//!
//! ```
//! use loom::sync::{mpsc, oneshot};
//!
//! loom::Runtime::builder().build()?.run(|| {
//!     // A server fiber answering requests through one-shot reply slots.
//!     let (requests, inbox) = mpsc::channel::<(u32, oneshot::Sender<u32>)>(16);
//!     loom::spawn(move || {
//!         for (n, reply) in inbox {
//!             let _ = reply.send(n * n);
//!         }
//!     });
//!     let (reply, answer) = oneshot::channel();
//!     requests.send((12, reply)).unwrap();
//!     assert_eq!(answer.recv(), Ok(144));
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use super::chan::{self, Chan, Rx, Slot, Tx, deadline_after};
use super::flavour::{Flavour, Shared};

pub use super::chan_error::{RecvError, RecvTimeoutError, TryRecvError};

/// Creates a one-shot channel.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = loom::sync::oneshot::channel();
///     loom::spawn(move || tx.send("done").unwrap());
///     assert_eq!(rx.recv(), Ok("done"));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    channel_in()
}

/// A one-shot channel of either flavour.
pub(crate) fn channel_in<T, F: Flavour>() -> (Sender<T, F>, Receiver<T, F>) {
    let (tx, rx) = chan::channel(Slot::new());
    (Sender { tx }, Receiver { rx })
}

/// The sending half of a one-shot channel.
///
/// # Examples
///
/// ```
/// let (tx, rx) = loom::sync::oneshot::channel();
/// tx.send(1).unwrap();
/// assert_eq!(rx.try_recv(), Ok(1));
/// ```
pub struct Sender<T, F: Flavour = Shared> {
    tx: Tx<Slot<T>, F>,
}

impl<T, F: Flavour> Sender<T, F> {
    /// Sends `value`; never waits.
    ///
    /// # Errors
    ///
    /// `Err(value)` if the receiver is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = loom::sync::oneshot::channel();
    /// drop(rx);
    /// assert_eq!(tx.send(5), Err(5));
    /// ```
    pub fn send(self, value: T) -> Result<(), T> {
        self.tx.send_last(value)
    }
}

impl<T, F: Flavour> fmt::Debug for Sender<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The receiving half of a one-shot channel.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = loom::sync::oneshot::channel::<u8>();
///     drop(tx); // never sent
///     assert!(rx.recv().is_err());
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Receiver<T, F: Flavour = Shared> {
    rx: Rx<Slot<T>, F>,
}

impl<T, F: Flavour> Receiver<T, F> {
    /// Waits for the value.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] if the sender was dropped without
    /// sending (or the value was already taken by [`try_recv`] or
    /// [`recv_timeout`]); [`RecvError::Cancelled`] if the calling fiber is
    /// cancelled while it waits; [`RecvError::Timeout`] if its call-tree
    /// deadline ([`crate::time::with_deadline`]) passes while it waits.
    ///
    /// [`try_recv`]: Receiver::try_recv
    /// [`recv_timeout`]: Receiver::recv_timeout
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (tx, rx) = loom::sync::oneshot::channel();
    ///     let worker = loom::spawn(move || tx.send(6 * 7).unwrap());
    ///     assert_eq!(rx.recv(), Ok(42));
    ///     worker.join().unwrap();
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv(self) -> Result<T, RecvError> {
        self.rx
            .recv(None)
            .map_err(RecvTimeoutError::without_timeout)
    }

    /// Waits at most `timeout` for the value; the receiver stays usable
    /// after a timeout.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], `Disconnected` or `Cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use loom::sync::oneshot::{self, RecvTimeoutError};
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (tx, rx) = oneshot::channel();
    ///     let wait = Duration::from_millis(2);
    ///     assert_eq!(rx.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
    ///     tx.send(1).unwrap();
    ///     assert_eq!(rx.recv_timeout(wait), Ok(1));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.rx.recv(deadline_after(timeout))
    }

    /// Takes the value if it is there; never waits.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if not sent yet, or
    /// [`TryRecvError::Disconnected`] if it never will be (or was taken).
    ///
    /// # Examples
    ///
    /// ```
    /// use loom::sync::oneshot::{self, TryRecvError};
    ///
    /// let (tx, rx) = oneshot::channel();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(3).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(3));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    pub(crate) fn chan(&self) -> &Chan<Slot<T>, F> {
        &self.rx
    }
}

impl<T, F: Flavour> fmt::Debug for Receiver<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}
