//! Sleeping, and deadlines that bound a whole call tree.
//!
//! Deadlines live in the loop's hierarchical timer wheel with millisecond
//! ticks, rounded up: a sleep never ends early, and may end up to about a
//! millisecond late (plus scheduling delay when the loop is busy).
//!
//! # Call-tree deadlines
//!
//! [`with_deadline`] (or [`with_timeout`]) runs a closure with a deadline
//! on the calling fiber: every blocking call the closure makes, however
//! deep in the code it calls, that would still be waiting at the deadline
//! returns there with an error of kind [`io::ErrorKind::TimedOut`]. No
//! parameter has to be threaded through, and code written without
//! timeouts in mind gets one.
//!
//! ```
//! use std::io::Read;
//! use std::time::Duration;
//!
//! loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
//!     let listener = loom::net::TcpListener::bind("127.0.0.1:0")?;
//!     let _silent = loom::net::TcpStream::connect(listener.local_addr()?)?;
//!     let (mut conn, _) = listener.accept()?;
//!     // A request handler deep down reads; the caller bounds it all.
//!     let read = loom::time::with_timeout(Duration::from_millis(20), || {
//!         let mut request = [0u8; 64];
//!         conn.read(&mut request)
//!     });
//!     assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Rules:
//!
//! - **Only waiting is bounded.** A call that need not wait — data already
//!   there, a free lock, a message in the channel, a finished fiber —
//!   succeeds even past the deadline, as with socket timeouts. Computing
//!   is never interrupted, and the fiber is not cancelled: after the
//!   deadline each blocking call that would wait fails at once, and code
//!   outside `with_deadline` runs unbounded again.
//! - **Nesting takes the earliest.** An inner deadline later than the
//!   outer one changes nothing; an earlier one applies inside it. Leaving
//!   `with_deadline`, by returning or unwinding, restores the outer one.
//! - **The earlier limit decides the error.** A call with a time limit of
//!   its own (a socket read timeout, `recv_timeout`, `lock_timeout`,
//!   `Condvar::wait_timeout`) reports its own timeout if that comes first
//!   (or at the same time), and the call tree's otherwise.
//! - **A deadline belongs to one fiber.** Fibers spawned with
//!   [`crate::spawn`] (or on another loop) start without one, since they
//!   may outlive the call that spawned them; a scoped fiber, which cannot,
//!   inherits its spawner's. [`deadline`] reads the one in force.
//!
//! What each blocking call returns when the call tree's deadline ends its
//! wait:
//!
//! | call | error |
//! |---|---|
//! | socket, pipe, terminal and file I/O through the loop (`read`, `write`, `accept`, `connect`, `send_to`, `recv_from`, ...), [`crate::io::stdin`] reads, stdout/stderr writes | [`io::Error`] of kind `TimedOut` (`ETIMEDOUT`); an earlier socket timeout still gives its `WouldBlock`. On io_uring the op is cancelled in the kernel and its completion awaited, so an op that completed anyway returns its result |
//! | [`sleep`], [`sleep_until`] | `TimedOut` at the deadline if the sleep would end after it; `Ok` if it ends at or before |
//! | [`JoinHandle::join`](crate::JoinHandle::join), [`SendJoinHandle::join`](crate::SendJoinHandle::join) | `Err` whose payload is an `io::Error` of kind `TimedOut`; the joined fiber is detached, as on cancellation |
//! | [`Mutex::lock`](crate::sync::Mutex::lock), [`RwLock::read`](crate::sync::RwLock::read)/[`write`](crate::sync::RwLock::write), [`Semaphore::acquire`](crate::sync::Semaphore::acquire), [`WaitGroup::wait`](crate::sync::WaitGroup::wait), [`Barrier::wait`](crate::sync::Barrier::wait), [`Select::ready`](crate::sync::Select::ready), and their `_timeout` forms | `TimedOut`; nothing is held and a barrier arrival is withdrawn |
//! | [`Condvar::wait`](crate::sync::Condvar::wait) and its forms | `TimedOut` with the mutex *not* held (as on cancellation); `wait_timeout`'s own, earlier limit still gives `Ok((guard, true))` |
//! | channel `send`, `recv` ([`mpsc`](crate::sync::mpsc), [`mpmc`](crate::sync::mpmc), [`oneshot`](crate::sync::oneshot)) | [`SendError::Timeout`](crate::sync::mpsc::SendError::Timeout) with the value, [`RecvError::Timeout`](crate::sync::mpsc::RecvError::Timeout); `send_timeout`/`recv_timeout` give their `Timeout` either way; all convert to an `io::Error` of kind `TimedOut` |
//! | [`Child::wait`](crate::process::Child::wait) | `TimedOut`; the child is left running and un-reaped, so a later `kill` and `wait` work |
//! | [`Command::status`](crate::process::Command::status)/[`output`](crate::process::Command::output), [`Child::wait_with_output`](crate::process::Child::wait_with_output) | `TimedOut`; the child, whose handle is gone, is left running, as a dropped [`Child`](crate::process::Child) is |
//! | [`Signals::recv`](crate::signal::Signals::recv), [`ctrl_c`](crate::signal::ctrl_c) | `TimedOut`; no signal is lost |
//!
//! Not bounded: work on the blocking pool, which cannot be interrupted
//! once started — [`crate::unblock`], files on the epoll/kqueue backends,
//! the stdio fallbacks that use the pool, spawning a child process — runs
//! to its end; waiting for a free stack in `spawn`; and closing an fd,
//! which a cancel could leave undone.
//!
//! Setting a deadline allocates nothing, and a call under one allocates
//! nothing more than without: the deadline is a field of the fiber's
//! control block, and a waiting call arms one timer on the loop's wheel —
//! only if there is a deadline.

mod deadline;

use std::io;
use std::time::{Duration, Instant};

pub use deadline::{deadline, with_deadline, with_timeout};

use crate::rt::current::with_current;

/// Suspends the running fiber for at least `duration`; other fibers run
/// meanwhile. Like `std::thread::sleep`, but only the fiber waits.
///
/// A zero or elapsed duration still yields to the other runnable fibers. A
/// duration too large for `Instant` sleeps until the fiber is cancelled
/// (or its call-tree deadline).
///
/// # Errors
///
/// The cancellation error ([`crate::fiber::is_cancelled`]) if the fiber is cancelled before or during the sleep;
/// [`io::ErrorKind::TimedOut`], at the deadline, if the sleep would end
/// after the fiber's call-tree deadline ([`with_deadline`]).
///
/// # Panics
///
/// Outside a fiber.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let start = Instant::now();
///     loom::time::sleep(Duration::from_millis(5))?;
///     assert!(start.elapsed() >= Duration::from_millis(5));
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> io::Result<()> {
    let now = Instant::now();
    with_current("loom::time::sleep", |lp| {
        lp.sleep_until(now.checked_add(duration), now)
    })
}

/// Suspends the running fiber until `deadline`; see [`sleep`].
///
/// # Errors
///
/// As [`sleep`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let wake = Instant::now() + Duration::from_millis(2);
///     loom::time::sleep_until(wake)?;
///     assert!(Instant::now() >= wake);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn sleep_until(deadline: Instant) -> io::Result<()> {
    with_current("loom::time::sleep_until", |lp| {
        lp.sleep_until(Some(deadline), Instant::now())
    })
}
