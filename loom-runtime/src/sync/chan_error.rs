//! The errors of the channels (`mpsc`, `mpmc`, `oneshot`, `Select`), shared
//! by all of them, and their conversions into `io::Error` for `?`.

use std::error::Error;
use std::fmt;
use std::io;

use super::waiter::Interrupted;

/// The error of a blocking send: the channel is disconnected, the sending
/// fiber was cancelled, or its call-tree deadline
/// ([`crate::time::with_deadline`]) passed while it waited for room. The
/// value comes back either way.
///
/// Converts into [`io::Error`] (for `?`): disconnected is
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe), cancelled is the runtime's
/// cancellation error ([`crate::fiber::is_cancelled`]), timed out is
/// [`TimedOut`](io::ErrorKind::TimedOut).
///
/// # Examples
///
/// ```
/// use loom::sync::mpsc::{self, SendError};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = mpsc::channel(1);
///     drop(rx);
///     let err = tx.send(5).unwrap_err();
///     assert!(matches!(err, SendError::Disconnected(5)));
///     assert_eq!(err.into_inner(), 5);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendError<T> {
    /// Every receiver is gone.
    Disconnected(T),
    /// The sending fiber was cancelled while it waited for room.
    Cancelled(T),
    /// The sending fiber's call-tree deadline
    /// ([`crate::time::with_deadline`]) passed while it waited for room;
    /// as [`SendTimeoutError::Timeout`] is for
    /// [`send_timeout`](super::mpsc::Sender::send_timeout).
    Timeout(T),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpsc::unbounded();
    /// drop(rx);
    /// assert_eq!(tx.send("hi").unwrap_err().into_inner(), "hi");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendError::Disconnected(value)
            | SendError::Cancelled(value)
            | SendError::Timeout(value) => value,
        }
    }
}

/// The error of [`try_send`](super::mpsc::Sender::try_send): the channel
/// is full or disconnected; the value comes back.
///
/// Converts into [`io::Error`]: full is
/// [`WouldBlock`](io::ErrorKind::WouldBlock), disconnected
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe).
///
/// # Examples
///
/// ```
/// use loom::sync::mpsc::{self, TrySendError};
///
/// let (tx, _rx) = mpsc::channel(1);
/// tx.try_send(1).unwrap();
/// assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full.
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, _rx) = loom::sync::mpsc::channel(1);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(tx.try_send(2).unwrap_err().into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) | TrySendError::Disconnected(value) => value,
        }
    }
}

/// The error of a send with a time limit: timed out, disconnected or
/// cancelled; the value comes back.
///
/// Converts into [`io::Error`]: timed out is
/// [`TimedOut`](io::ErrorKind::TimedOut), disconnected
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe), cancelled the runtime's
/// cancellation error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use loom::sync::mpsc::{self, SendTimeoutError};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, _rx) = mpsc::channel(1);
///     tx.send(1).unwrap();
///     let err = tx.send_timeout(2, Duration::from_millis(1)).unwrap_err();
///     assert!(matches!(err, SendTimeoutError::Timeout(2)));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// The channel stayed full until the time limit (or the fiber's
    /// call-tree deadline, if earlier).
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
    /// The sending fiber was cancelled while it waited for room.
    Cancelled(T),
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = loom::sync::mpsc::channel(1);
    /// drop(rx);
    /// let err = tx.send_timeout(7, Duration::from_secs(1)).unwrap_err();
    /// assert_eq!(err.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(value)
            | SendTimeoutError::Disconnected(value)
            | SendTimeoutError::Cancelled(value) => value,
        }
    }

    /// For a send without a time limit of its own, which times out only
    /// at the fiber's call-tree deadline.
    pub(crate) fn without_timeout(self) -> SendError<T> {
        match self {
            SendTimeoutError::Disconnected(value) => SendError::Disconnected(value),
            SendTimeoutError::Cancelled(value) => SendError::Cancelled(value),
            SendTimeoutError::Timeout(value) => SendError::Timeout(value),
        }
    }
}

/// The error of a blocking receive: every sender is gone and the channel
/// is empty, the receiving fiber was cancelled, or its call-tree deadline
/// ([`crate::time::with_deadline`]) passed while it waited.
///
/// Converts into [`io::Error`]: disconnected is
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe), cancelled the runtime's
/// cancellation error, timed out [`TimedOut`](io::ErrorKind::TimedOut).
///
/// # Examples
///
/// ```
/// use loom::sync::mpsc::{self, RecvError};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (tx, rx) = mpsc::channel(1);
///     tx.send(1).unwrap();
///     drop(tx);
///     assert_eq!(rx.recv(), Ok(1));
///     assert_eq!(rx.recv(), Err(RecvError::Disconnected));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and no message is left.
    Disconnected,
    /// The receiving fiber was cancelled while it waited.
    Cancelled,
    /// The receiving fiber's call-tree deadline
    /// ([`crate::time::with_deadline`]) passed while it waited; as
    /// [`RecvTimeoutError::Timeout`] is for
    /// [`recv_timeout`](super::mpsc::Receiver::recv_timeout).
    Timeout,
}

/// The error of [`try_recv`](super::mpsc::Receiver::try_recv): no message
/// now, or none ever again.
///
/// Converts into [`io::Error`]: empty is
/// [`WouldBlock`](io::ErrorKind::WouldBlock), disconnected
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe).
///
/// # Examples
///
/// ```
/// use loom::sync::mpsc::{self, TryRecvError};
///
/// let (tx, rx) = mpsc::channel::<u8>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message now; senders remain.
    Empty,
    /// Every sender is gone and no message is left.
    Disconnected,
}

/// The error of a receive with a time limit.
///
/// Converts into [`io::Error`]: timed out is
/// [`TimedOut`](io::ErrorKind::TimedOut), disconnected
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe), cancelled the runtime's
/// cancellation error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use loom::sync::mpsc::{self, RecvTimeoutError};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (_tx, rx) = mpsc::channel::<u8>(1);
///     let err = rx.recv_timeout(Duration::from_millis(1)).unwrap_err();
///     assert_eq!(err, RecvTimeoutError::Timeout);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No message arrived before the time limit (or the fiber's call-tree
    /// deadline, if earlier).
    Timeout,
    /// Every sender is gone and no message is left.
    Disconnected,
    /// The receiving fiber was cancelled while it waited.
    Cancelled,
}

impl RecvTimeoutError {
    /// For a receive without a time limit of its own, which times out
    /// only at the fiber's call-tree deadline.
    pub(crate) fn without_timeout(self) -> RecvError {
        match self {
            RecvTimeoutError::Disconnected => RecvError::Disconnected,
            RecvTimeoutError::Cancelled => RecvError::Cancelled,
            RecvTimeoutError::Timeout => RecvError::Timeout,
        }
    }
}

// The values are not printed: `T` need not be `Debug` (as in std).
macro_rules! debug_without_value {
    ($name:ident { $($variant:ident),* }) => {
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)")),)*
                }
            }
        }
    };
}
debug_without_value!(SendError {
    Disconnected,
    Cancelled,
    Timeout
});
debug_without_value!(TrySendError { Full, Disconnected });
debug_without_value!(SendTimeoutError {
    Timeout,
    Disconnected,
    Cancelled
});

const DISCONNECTED_SEND: &str = "sending on a disconnected channel";
const DISCONNECTED_RECV: &str = "receiving on an empty and disconnected channel";
const CANCELLED: &str = "channel operation cancelled";
const TIMED_OUT: &str = "timed out waiting on a channel";

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Disconnected(_) => DISCONNECTED_SEND,
            SendError::Cancelled(_) => CANCELLED,
            SendError::Timeout(_) => TIMED_OUT,
        })
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "sending on a full channel",
            TrySendError::Disconnected(_) => DISCONNECTED_SEND,
        })
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendTimeoutError::Timeout(_) => TIMED_OUT,
            SendTimeoutError::Disconnected(_) => DISCONNECTED_SEND,
            SendTimeoutError::Cancelled(_) => CANCELLED,
        })
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvError::Disconnected => DISCONNECTED_RECV,
            RecvError::Cancelled => CANCELLED,
            RecvError::Timeout => TIMED_OUT,
        })
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "receiving on an empty channel",
            TryRecvError::Disconnected => DISCONNECTED_RECV,
        })
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvTimeoutError::Timeout => TIMED_OUT,
            RecvTimeoutError::Disconnected => DISCONNECTED_RECV,
            RecvTimeoutError::Cancelled => CANCELLED,
        })
    }
}

impl<T> Error for SendError<T> {}
impl<T> Error for TrySendError<T> {}
impl<T> Error for SendTimeoutError<T> {}
impl Error for RecvError {}
impl Error for TryRecvError {}
impl Error for RecvTimeoutError {}

// The io forms carry no message box, so converting never allocates.
fn io_disconnected() -> io::Error {
    io::ErrorKind::BrokenPipe.into()
}

fn io_cancelled() -> io::Error {
    Interrupted::Cancelled.into_io_error()
}

fn io_timed_out() -> io::Error {
    Interrupted::TimedOut.into_io_error()
}

impl<T> From<SendError<T>> for io::Error {
    fn from(error: SendError<T>) -> io::Error {
        match error {
            SendError::Disconnected(_) => io_disconnected(),
            SendError::Cancelled(_) => io_cancelled(),
            SendError::Timeout(_) => io_timed_out(),
        }
    }
}

impl<T> From<TrySendError<T>> for io::Error {
    fn from(error: TrySendError<T>) -> io::Error {
        match error {
            TrySendError::Full(_) => io::ErrorKind::WouldBlock.into(),
            TrySendError::Disconnected(_) => io_disconnected(),
        }
    }
}

impl<T> From<SendTimeoutError<T>> for io::Error {
    fn from(error: SendTimeoutError<T>) -> io::Error {
        match error {
            SendTimeoutError::Timeout(_) => io_timed_out(),
            SendTimeoutError::Disconnected(_) => io_disconnected(),
            SendTimeoutError::Cancelled(_) => io_cancelled(),
        }
    }
}

impl From<RecvError> for io::Error {
    fn from(error: RecvError) -> io::Error {
        match error {
            RecvError::Disconnected => io_disconnected(),
            RecvError::Cancelled => io_cancelled(),
            RecvError::Timeout => io_timed_out(),
        }
    }
}

impl From<TryRecvError> for io::Error {
    fn from(error: TryRecvError) -> io::Error {
        match error {
            TryRecvError::Empty => io::ErrorKind::WouldBlock.into(),
            TryRecvError::Disconnected => io_disconnected(),
        }
    }
}

impl From<RecvTimeoutError> for io::Error {
    fn from(error: RecvTimeoutError) -> io::Error {
        match error {
            RecvTimeoutError::Timeout => io_timed_out(),
            RecvTimeoutError::Disconnected => io_disconnected(),
            RecvTimeoutError::Cancelled => io_cancelled(),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(error: RecvError) -> RecvTimeoutError {
        match error {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Cancelled => RecvTimeoutError::Cancelled,
            RecvError::Timeout => RecvTimeoutError::Timeout,
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(error: SendError<T>) -> SendTimeoutError<T> {
        match error {
            SendError::Disconnected(value) => SendTimeoutError::Disconnected(value),
            SendError::Cancelled(value) => SendTimeoutError::Cancelled(value),
            SendError::Timeout(value) => SendTimeoutError::Timeout(value),
        }
    }
}
