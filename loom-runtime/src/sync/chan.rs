//! The one channel core behind [`mpsc`](super::mpsc),
//! [`mpmc`](super::mpmc) and [`oneshot`](super::oneshot): a buffer, the
//! numbers of senders and receivers and a wait list per side, all behind
//! the flavour's lock; and the handles that count themselves in and out.
//! The errors the channels report are in `chan_error.rs`.
//!
//! Every function here keeps three rules:
//! - a fast path (a message is there, there is room) takes the lock once
//!   and touches only the buffer and the wait lists' heads; only a caller
//!   that must wait builds a `Waiter` (inside `wait_until`);
//! - wake-ups are delivered after the lock is released (`Wakes`);
//! - no user value is dropped under the lock: values are moved out first,
//!   since their `Drop` is user code.

use std::collections::VecDeque;
use std::mem::{self, ManuallyDrop};
use std::ops::Deref;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::chan_error::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use super::flavour::{Flavour, RawLock};
use super::waiter::{Interrupted, WaitList, Waiter, Wakes, spin_until, wait_until};

/// Where a channel keeps its messages.
pub(crate) trait Buffer {
    type Item;
    fn is_full(&self) -> bool;
    fn is_empty(&self) -> bool;
    fn len(&self) -> usize;
    /// Only called when not full.
    fn push(&mut self, value: Self::Item);
    fn pop(&mut self) -> Option<Self::Item>;
    /// Moves every message out, to be dropped outside the lock.
    fn take_all(&mut self) -> Self;
}

/// The buffer of mpsc and mpmc channels. A bounded queue is allocated
/// whole when the channel is created, so sending never allocates.
///
/// The oldest message sits inline, next to the lock, so that a channel
/// that rarely holds more than one message (a ping-pong, a request and
/// its answer) moves it between threads without touching the heap
/// buffer's cache line as well.
#[repr(C)]
pub(crate) struct Queue<T> {
    /// The oldest message; `None` only while `items` is empty too.
    first: Option<T>,
    /// `usize::MAX` for unbounded channels.
    capacity: usize,
    /// The messages after `first`, oldest first.
    items: VecDeque<T>,
}

impl<T> Queue<T> {
    pub(crate) fn bounded(capacity: usize) -> Queue<T> {
        Queue {
            first: None,
            capacity,
            items: VecDeque::with_capacity(capacity.saturating_sub(1)),
        }
    }

    pub(crate) fn unbounded() -> Queue<T> {
        Queue {
            first: None,
            capacity: usize::MAX,
            items: VecDeque::new(),
        }
    }
}

impl<T> Buffer for Queue<T> {
    type Item = T;

    #[inline]
    fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    #[inline]
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.items.len()
    }

    #[inline]
    fn push(&mut self, value: T) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.items.push_back(value);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<T> {
        let value = self.first.take()?;
        if !self.items.is_empty() {
            self.first = self.items.pop_front();
        }
        Some(value)
    }

    fn take_all(&mut self) -> Queue<T> {
        Queue {
            first: self.first.take(),
            capacity: self.capacity,
            items: mem::take(&mut self.items),
        }
    }
}

/// The buffer of a oneshot channel: room for one message, inline.
pub(crate) struct Slot<T>(Option<T>);

impl<T> Slot<T> {
    pub(crate) fn new() -> Slot<T> {
        Slot(None)
    }
}

impl<T> Buffer for Slot<T> {
    type Item = T;

    fn is_full(&self) -> bool {
        self.0.is_some()
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn len(&self) -> usize {
        usize::from(self.0.is_some())
    }

    fn push(&mut self, value: T) {
        debug_assert!(self.0.is_none());
        self.0 = Some(value);
    }

    fn pop(&mut self) -> Option<T> {
        self.0.take()
    }

    fn take_all(&mut self) -> Slot<T> {
        Slot(self.0.take())
    }
}

/// Laid out in this order so that what every send and receive touches —
/// the buffer's head, the counts, the wait lists' heads — shares the
/// lock's cache lines (see [`Chan`]).
#[repr(C)]
struct State<B> {
    buffer: B,
    senders: usize,
    receivers: usize,
    /// Senders waiting for room (bounded channels only).
    send_waiters: WaitList,
    /// Receivers waiting for a message or for the last sender to go, and
    /// `Select`s waiting on this channel among others.
    recv_waiters: WaitList,
}

impl<B: Buffer> State<B> {
    /// Whether a receive would not wait: a message, or no sender left.
    #[inline]
    fn recv_ready(&self) -> bool {
        !self.buffer.is_empty() || self.senders == 0
    }
}

// Named functions rather than closures: `wait_until` wants a `fn` pointer
// whose output borrows from its input.
fn send_waiters<B>(state: &State<B>) -> &WaitList {
    &state.send_waiters
}

fn recv_waiters<B>(state: &State<B>) -> &WaitList {
    &state.recv_waiters
}

/// A channel's shared part; the handles point at it through `F::Ref`.
///
/// `version` comes first, on the lock's cache line: a fiber about to wait
/// on a `Shared` channel first spins a little on it (see
/// [`spin_until`]) — one load of a line the other side writes anyway
/// when it takes the lock — instead of registering a waiter that the
/// other side would then wake through the fiber's loop's mailbox.
#[repr(C, align(128))]
pub(crate) struct Chan<B, F: Flavour> {
    /// Bumped under the lock by every change a waiting sender or receiver
    /// may be waiting for (a message in or out, the last sender or
    /// receiver gone). A hint read without the lock; `Shared` only.
    version: AtomicU32,
    lock: F::Lock<State<B>>,
}

/// The receive attempt of [`Chan::recv`]: `None`, wait; `Some(None)`,
/// disconnected; `Some(Some(..))`, received.
#[allow(clippy::type_complexity)]
fn take_one<B: Buffer>(state: &mut State<B>) -> Option<Option<(B::Item, Wakes)>> {
    match state.buffer.pop() {
        Some(value) => Some(Some((value, state.send_waiters.notify_one()))),
        None if state.senders == 0 => Some(None),
        None => None,
    }
}

/// A deadline `timeout` from now; `None` (wait forever) if that is too far
/// to represent.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<B: Buffer, F: Flavour> Chan<B, F> {
    /// Records a change waiters may be spinning for. Call under the lock.
    #[inline]
    fn changed(&self) {
        if F::CROSS_THREAD {
            // Only the lock holder writes, so load + store loses nothing.
            let next = self.version.load(Ordering::Relaxed).wrapping_add(1);
            self.version.store(next, Ordering::Release);
        }
    }

    /// Runs `attempt` under the lock; if it says "wait" on a `Shared`
    /// channel, spins (bounded, see [`spin_until`]) until the channel
    /// changes. Returns what the attempt returned. The caller's
    /// `wait_until` then tries again under the lock and waits properly if
    /// the change was not the one it needed or did not come.
    #[inline]
    fn attempt_then_spin<R>(
        &self,
        deadline: Option<Instant>,
        attempt: &mut impl FnMut(&mut State<B>) -> Option<R>,
    ) -> Option<R> {
        if !F::CROSS_THREAD {
            return None;
        }
        let seen = self.version.load(Ordering::Acquire);
        let taken = self.lock.with(&mut *attempt);
        if taken.is_none() {
            spin_until(deadline, || self.version.load(Ordering::Relaxed) != seen);
        }
        taken
    }

    /// Sends `value`, waiting for room until `deadline`.
    pub(crate) fn send(
        &self,
        value: B::Item,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<B::Item>> {
        // Moved into the buffer only on success; on failure it comes back.
        let mut value = Some(value);
        // None: wait; Some(None): disconnected; Some(Some): sent.
        let mut attempt = |state: &mut State<B>| {
            if state.receivers == 0 {
                return Some(None);
            }
            if state.buffer.is_full() {
                return None;
            }
            if let Some(value) = value.take() {
                state.buffer.push(value);
                self.changed();
            }
            Some(Some(state.recv_waiters.notify_one()))
        };
        let sent = match self.attempt_then_spin(deadline, &mut attempt) {
            Some(sent) => Ok(sent),
            None => wait_until(
                &self.lock,
                send_waiters,
                deadline,
                F::CROSS_THREAD,
                "Sender::send",
                attempt,
            ),
        };
        match sent {
            Ok(Some(wakes)) => {
                wakes.deliver();
                Ok(())
            }
            Ok(None) => Err(SendTimeoutError::Disconnected(unsent(value))),
            Err(Interrupted::TimedOut) => Err(SendTimeoutError::Timeout(unsent(value))),
            Err(Interrupted::Cancelled) => Err(SendTimeoutError::Cancelled(unsent(value))),
        }
    }

    /// Sends `value` if there is room now.
    pub(crate) fn try_send(&self, value: B::Item) -> Result<(), TrySendError<B::Item>> {
        let sent = self.lock.with(|state| {
            if state.receivers == 0 {
                // The value leaves the closure: it is not dropped here.
                Err(TrySendError::Disconnected(value))
            } else if state.buffer.is_full() {
                Err(TrySendError::Full(value))
            } else {
                state.buffer.push(value);
                self.changed();
                Ok(state.recv_waiters.notify_one())
            }
        });
        sent.map(Wakes::deliver)
    }

    /// Receives a message, waiting until `deadline`.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<B::Item, RecvTimeoutError> {
        let mut attempt = |state: &mut State<B>| {
            let taken = take_one(state);
            if matches!(taken, Some(Some(_))) {
                self.changed();
            }
            taken
        };
        let taken = match self.attempt_then_spin(deadline, &mut attempt) {
            Some(taken) => Ok(taken),
            None => wait_until(
                &self.lock,
                recv_waiters,
                deadline,
                F::CROSS_THREAD,
                "Receiver::recv",
                attempt,
            ),
        };
        match taken {
            Ok(Some((value, wakes))) => {
                wakes.deliver();
                Ok(value)
            }
            Ok(None) => Err(RecvTimeoutError::Disconnected),
            Err(Interrupted::TimedOut) => Err(RecvTimeoutError::Timeout),
            Err(Interrupted::Cancelled) => Err(RecvTimeoutError::Cancelled),
        }
    }

    /// Receives a message if one is there.
    pub(crate) fn try_recv(&self) -> Result<B::Item, TryRecvError> {
        let taken = self.lock.with(|state| match state.buffer.pop() {
            Some(value) => {
                self.changed();
                Ok((value, state.send_waiters.notify_one()))
            }
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        });
        taken.map(|(value, wakes)| {
            wakes.deliver();
            value
        })
    }

    /// Messages in the buffer.
    pub(crate) fn len(&self) -> usize {
        self.lock.with(|state| state.buffer.len())
    }

    // ---- for `Select` ----

    /// Whether a receive would not wait.
    pub(crate) fn recv_ready(&self) -> bool {
        self.lock.with(|state| state.recv_ready())
    }

    /// Links `waiter` on the receive side unless a receive would not wait
    /// (then returns `true` and links nothing).
    ///
    /// # Safety
    /// `waiter` is in no list and stays in place until
    /// [`Chan::unregister_recv`] took it out again or it was notified and
    /// delivered.
    pub(crate) unsafe fn register_recv(&self, waiter: &Waiter) -> bool {
        self.lock.with(|state| {
            if state.recv_ready() {
                return true;
            }
            // SAFETY: forwarded from this function's contract.
            unsafe { state.recv_waiters.push(waiter) };
            false
        })
    }

    /// Unlinks a waiter linked by [`Chan::register_recv`]; `false` if it
    /// was notified instead (it must then wait for the delivery).
    pub(crate) fn unregister_recv(&self, waiter: &Waiter) -> bool {
        self.lock.with(|state| state.recv_waiters.remove(waiter))
    }

    /// Hands a notification its waiter did not use to the next receive
    /// waiter, if a receive would still not wait.
    pub(crate) fn pass_on_recv(&self) {
        let wakes = self.lock.with(|state| {
            if state.recv_ready() {
                state.recv_waiters.notify_one()
            } else {
                Wakes::new()
            }
        });
        wakes.deliver();
    }
}

/// The value of a failed send, which never left the sender.
fn unsent<T>(value: Option<T>) -> T {
    value.expect("loom: a failed send keeps its value")
}

/// Creates a channel around `buffer` with one sender and one receiver.
pub(crate) fn channel<B: Buffer, F: Flavour>(buffer: B) -> (Tx<B, F>, Rx<B, F>) {
    let chan = F::new_ref(Chan {
        version: AtomicU32::new(0),
        lock: RawLock::new(State {
            buffer,
            senders: 1,
            receivers: 1,
            send_waiters: WaitList::new(),
            recv_waiters: WaitList::new(),
        }),
    });
    (Tx { chan: chan.clone() }, Rx { chan })
}

/// A sending handle: counts itself in the channel's senders; the last one
/// to go wakes the receivers, who then see the disconnection.
pub(crate) struct Tx<B: Buffer, F: Flavour> {
    chan: F::Ref<Chan<B, F>>,
}

impl<B: Buffer, F: Flavour> Tx<B, F> {
    /// Sends `value` and goes, under one lock (a oneshot's send).
    pub(crate) fn send_last(self, value: B::Item) -> Result<(), B::Item> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the reference
        // is moved out exactly once; the sender count it stood for is
        // given up below instead of in `Drop`.
        let chan = unsafe { ptr::read(&this.chan) };
        let sent = chan.lock.with(|state| {
            state.senders -= 1;
            chan.changed();
            if state.receivers == 0 {
                return Err(value);
            }
            state.buffer.push(value);
            // Wakes the receiver for the value (or, with several senders,
            // for the disconnection: every receive waiter must look).
            Ok(state.recv_waiters.notify_all())
        });
        sent.map(Wakes::deliver)
    }
}

impl<B: Buffer, F: Flavour> Deref for Tx<B, F> {
    type Target = Chan<B, F>;

    #[inline]
    fn deref(&self) -> &Chan<B, F> {
        &self.chan
    }
}

impl<B: Buffer, F: Flavour> Clone for Tx<B, F> {
    fn clone(&self) -> Self {
        self.chan.lock.with(|state| state.senders += 1);
        Tx {
            chan: self.chan.clone(),
        }
    }
}

impl<B: Buffer, F: Flavour> Drop for Tx<B, F> {
    fn drop(&mut self) {
        let wakes = self.chan.lock.with(|state| {
            state.senders -= 1;
            if state.senders == 0 {
                self.chan.changed();
                state.recv_waiters.notify_all()
            } else {
                Wakes::new()
            }
        });
        wakes.deliver();
    }
}

/// A receiving handle: counts itself in the channel's receivers; the last
/// one to go drops the buffered messages and wakes the senders, who then
/// see the disconnection.
pub(crate) struct Rx<B: Buffer, F: Flavour> {
    chan: F::Ref<Chan<B, F>>,
}

impl<B: Buffer, F: Flavour> Deref for Rx<B, F> {
    type Target = Chan<B, F>;

    #[inline]
    fn deref(&self) -> &Chan<B, F> {
        &self.chan
    }
}

impl<B: Buffer, F: Flavour> Clone for Rx<B, F> {
    fn clone(&self) -> Self {
        self.chan.lock.with(|state| state.receivers += 1);
        Rx {
            chan: self.chan.clone(),
        }
    }
}

impl<B: Buffer, F: Flavour> Drop for Rx<B, F> {
    fn drop(&mut self) {
        let (wakes, unreceived) = self.chan.lock.with(|state| {
            state.receivers -= 1;
            if state.receivers == 0 {
                self.chan.changed();
                // Nobody can receive them any more: drop them now (like
                // std), not when the last sender goes.
                (
                    state.send_waiters.notify_all(),
                    Some(state.buffer.take_all()),
                )
            } else {
                (Wakes::new(), None)
            }
        });
        wakes.deliver();
        drop(unreceived);
    }
}
