//! [`Select`]: waiting on several receivers at once, without allocating.
//!
//! The select leaves one waiter per receiver — all in its own frame — on
//! each channel's receive wait list, and sleeps until any is notified.
//! Afterwards it unlinks the ones not notified, waits for the delivery of
//! the ones that were, and hands every notification it does not use on
//! to the next waiter of that channel, so no wake-up is lost to another
//! receiver of an mpmc channel.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::chan::{Buffer, Chan, deadline_after};
use super::flavour::{Flavour, Shared};
use super::waiter::{Interrupted, Waiter, block_until};
use super::{mpmc, mpsc, oneshot};

/// The most receivers one [`Select`] can wait on.
const MAX_ARMS: usize = 32;

/// What a select needs of a channel's receive side.
trait Arm {
    /// Whether a receive would not wait (a message, or disconnected).
    fn is_ready(&self) -> bool;
    /// Links `waiter` unless ready (then `true`, nothing linked).
    ///
    /// # Safety
    /// As `Chan::register_recv`.
    unsafe fn register(&self, waiter: &Waiter) -> bool;
    /// Unlinks `waiter`; `false` if it was notified instead.
    fn unregister(&self, waiter: &Waiter) -> bool;
    /// Passes an unused notification on to the next receive waiter.
    fn pass_on(&self);
}

impl<B: Buffer, F: Flavour> Arm for Chan<B, F> {
    fn is_ready(&self) -> bool {
        self.recv_ready()
    }

    unsafe fn register(&self, waiter: &Waiter) -> bool {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.register_recv(waiter) }
    }

    fn unregister(&self, waiter: &Waiter) -> bool {
        self.unregister_recv(waiter)
    }

    fn pass_on(&self) {
        self.pass_on_recv();
    }
}

/// A receiver a [`Select`] can wait on: the receivers of
/// [`mpsc`](super::mpsc), [`mpmc`](super::mpmc) and
/// [`oneshot`](super::oneshot) channels of flavour `F`. Sealed: it cannot
/// be implemented outside loom.
pub trait Selectable<F: Flavour> {
    #[doc(hidden)]
    fn arm(&self) -> ArmRef<'_>;
}

/// A receiver as a select sees it. Only loom can make one, which seals
/// [`Selectable`].
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct ArmRef<'a>(&'a dyn Arm);

impl fmt::Debug for ArmRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArmRef")
    }
}

impl<T, F: Flavour> Selectable<F> for mpsc::Receiver<T, F> {
    fn arm(&self) -> ArmRef<'_> {
        ArmRef(self.chan())
    }
}

impl<T, F: Flavour> Selectable<F> for mpmc::Receiver<T, F> {
    fn arm(&self) -> ArmRef<'_> {
        ArmRef(self.chan())
    }
}

impl<T, F: Flavour> Selectable<F> for oneshot::Receiver<T, F> {
    fn arm(&self) -> ArmRef<'_> {
        ArmRef(self.chan())
    }
}

/// Waits until one of several receivers (of one flavour, any message
/// types) has a message or is disconnected, and says which.
///
/// Add receivers with [`recv`](Select::recv), which numbers them from 0;
/// [`ready`](Select::ready) returns the number of one that is ready, and
/// you then take the message with its `try_recv`. With several receivers
/// on one [`mpmc`](super::mpmc) channel, another receiver may take the
/// message first, so `try_recv` can still say `Empty`: loop. A
/// disconnected receiver stays ready; [`remove`](Select::remove) it to
/// keep waiting on the others.
///
/// A select holds up to 32 receivers ([`Select::MAX_ARMS`]) and
/// allocates nothing: while it waits, it keeps room for a waiter per
/// possible receiver — about 2.5 KiB — on the caller's stack. When several receivers are ready, successive calls
/// start looking at different ones, so none is starved.
///
/// # Examples
///
/// ```
/// use loom::sync::{Select, mpsc};
///
/// loom::Runtime::builder().build()?.run(|| {
///     let (numbers_tx, numbers) = mpsc::channel::<u32>(4);
///     let (words_tx, words) = mpsc::channel::<&str>(4);
///     loom::spawn(move || {
///         numbers_tx.send(1).unwrap();
///         words_tx.send("two").unwrap();
///     });
///     let mut select = Select::new();
///     let n = select.recv(&numbers);
///     let w = select.recv(&words);
///     let mut got = Vec::new();
///     while got.len() < 2 {
///         let index = select.ready()?;
///         if index == n {
///             if let Ok(x) = numbers.try_recv() {
///                 got.push(x.to_string());
///             }
///         } else if index == w {
///             if let Ok(s) = words.try_recv() {
///                 got.push(s.to_string());
///             }
///         }
///     }
///     assert_eq!(got, ["1", "two"]);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Select<'a, F: Flavour = Shared> {
    arms: [Option<&'a dyn Arm>; MAX_ARMS],
    /// Arms added so far (removed ones stay as holes: indices are stable).
    len: usize,
    /// Where the next scan starts, so a busy arm cannot starve the others.
    next: usize,
    _flavour: PhantomData<fn() -> F>,
}

impl<'a, F: Flavour> Select<'a, F> {
    /// The most receivers one select can hold.
    pub const MAX_ARMS: usize = MAX_ARMS;

    /// A select with no receivers yet.
    ///
    /// ```
    /// let select: loom::sync::Select = loom::sync::Select::new();
    /// # drop(select);
    /// ```
    pub fn new() -> Select<'a, F> {
        Select {
            arms: [None; MAX_ARMS],
            len: 0,
            next: 0,
            _flavour: PhantomData,
        }
    }

    /// Adds `receiver` and returns its index (0 for the first, and so on).
    ///
    /// # Panics
    ///
    /// If the select already holds [`Select::MAX_ARMS`] receivers.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = loom::sync::mpsc::channel::<()>(1);
    /// let (_tx2, rx2) = loom::sync::oneshot::channel::<u8>();
    /// let mut select = loom::sync::Select::new();
    /// assert_eq!(select.recv(&rx), 0);
    /// assert_eq!(select.recv(&rx2), 1);
    /// ```
    #[track_caller]
    pub fn recv<R: Selectable<F> + ?Sized>(&mut self, receiver: &'a R) -> usize {
        assert!(
            self.len < MAX_ARMS,
            "loom: a Select holds at most {MAX_ARMS} receivers"
        );
        let ArmRef(arm) = receiver.arm();
        self.arms[self.len] = Some(arm);
        self.len += 1;
        self.len - 1
    }

    /// Stops waiting on the receiver at `index` (a disconnected one, say);
    /// the other indices stay as they are.
    ///
    /// # Panics
    ///
    /// If `index` was not returned by [`recv`](Select::recv) or was
    /// already removed.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpsc::channel::<u8>(1);
    /// let (tx2, rx2) = loom::sync::mpsc::channel::<u8>(1);
    /// let mut select = loom::sync::Select::new();
    /// let first = select.recv(&rx);
    /// let second = select.recv(&rx2);
    /// drop(tx); // `rx` is disconnected: always ready
    /// assert_eq!(select.try_ready(), Some(first));
    /// select.remove(first);
    /// tx2.send(1).unwrap();
    /// assert_eq!(select.try_ready(), Some(second));
    /// ```
    #[track_caller]
    pub fn remove(&mut self, index: usize) {
        let removed = self.arms.get_mut(index).and_then(Option::take);
        assert!(
            index < self.len && removed.is_some(),
            "loom: Select::remove({index}): no such receiver"
        );
    }

    /// The index of a receiver that is ready now, if any; never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = loom::sync::mpsc::channel(1);
    /// let mut select = loom::sync::Select::new();
    /// let index = select.recv(&rx);
    /// assert_eq!(select.try_ready(), None);
    /// tx.send(()).unwrap();
    /// assert_eq!(select.try_ready(), Some(index));
    /// ```
    pub fn try_ready(&mut self) -> Option<usize> {
        let found = scan(&self.arms[..self.len], self.next)?;
        self.next = (found + 1) % self.len;
        Some(found)
    }

    /// Waits until a receiver has a message or is disconnected and returns
    /// its index.
    ///
    /// # Errors
    ///
    /// The runtime's cancellation error ([`crate::fiber::is_cancelled`])
    /// if the calling fiber is cancelled while it waits;
    /// [`io::ErrorKind::TimedOut`] if its call-tree deadline
    /// ([`crate::time::with_deadline`]) passes first.
    ///
    /// # Panics
    ///
    /// If the select holds no receiver (it would wait forever).
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (_idle_tx, idle) = loom::sync::mpsc::channel::<()>(1);
    ///     let (tx, busy) = loom::sync::mpsc::channel(1);
    ///     loom::spawn(move || tx.send(9).unwrap());
    ///     let mut select = loom::sync::Select::new();
    ///     select.recv(&idle);
    ///     let b = select.recv(&busy);
    ///     assert_eq!(select.ready()?, b);
    ///     assert_eq!(busy.try_recv(), Ok(9));
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn ready(&mut self) -> io::Result<usize> {
        assert!(
            self.arms.iter().any(Option::is_some),
            "loom: Select::ready with no receivers would wait forever"
        );
        self.wait(None).map_err(Interrupted::into_io_error)
    }

    /// Like [`ready`](Select::ready), but waits at most `timeout`; with
    /// no receivers it just sleeps that long.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] if no receiver became ready in time;
    /// the cancellation error if the calling fiber is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let (_tx, rx) = loom::sync::mpsc::channel::<()>(1);
    ///     let mut select = loom::sync::Select::new();
    ///     select.recv(&rx);
    ///     let err = select.ready_timeout(Duration::from_millis(2)).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ready_timeout(&mut self, timeout: Duration) -> io::Result<usize> {
        self.wait(deadline_after(timeout))
            .map_err(Interrupted::into_io_error)
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Result<usize, Interrupted> {
        loop {
            if let Some(index) = self.try_ready() {
                return Ok(index);
            }
            if let Some(index) = self.sleep(deadline)? {
                self.next = (index + 1) % self.len;
                return Ok(index);
            }
        }
    }

    /// One round of waiting: returns a ready arm, or `None` if the wake-up
    /// found nothing ready (another receiver was quicker) — then wait again.
    fn sleep(&self, deadline: Option<Instant>) -> Result<Option<usize>, Interrupted> {
        let arms = &self.arms[..self.len];
        let mut waiters: [Option<Waiter>; MAX_ARMS] = [const { None }; MAX_ARMS];
        // Arms below `linked` (and not holes) have their waiter linked.
        let mut linked = 0;
        let mut ready = None;
        for (index, arm) in arms.iter().enumerate() {
            if let Some(arm) = arm {
                let waiter =
                    waiters[index].insert(Waiter::for_current(F::CROSS_THREAD, "Select::ready"));
                // SAFETY: `waiters` stays in this frame until every linked
                // waiter is unlinked or, if notified, delivered (below).
                if unsafe { arm.register(waiter) } {
                    ready = Some(index);
                    break;
                }
            }
            linked = index + 1;
        }
        let slept = match ready {
            Some(_) => Ok(()),
            None => block_until(deadline, F::CROSS_THREAD, || {
                waiters[..linked].iter().flatten().any(Waiter::is_delivered)
            }),
        };
        let mut notified = 0u32;
        for (index, (arm, waiter)) in arms[..linked].iter().zip(&waiters).enumerate() {
            if let (Some(arm), Some(waiter)) = (arm, waiter)
                && !arm.unregister(waiter)
            {
                waiter.wait_delivered();
                notified |= 1 << index;
            }
        }
        let chosen = match slept {
            Ok(()) => ready.or_else(|| scan(arms, self.next)),
            // Something may have become ready just as time ran out.
            Err(Interrupted::TimedOut) => scan(arms, self.next),
            Err(Interrupted::Cancelled) => None,
        };
        // Notifications this select does not use go to the channels' next
        // waiters (e.g. other receivers of an mpmc channel).
        for (index, arm) in arms.iter().enumerate() {
            if notified & (1 << index) != 0
                && Some(index) != chosen
                && let Some(arm) = arm
            {
                arm.pass_on();
            }
        }
        match (slept, chosen) {
            (_, Some(index)) => Ok(Some(index)),
            (Err(interrupted), None) => Err(interrupted),
            (Ok(()), None) => Ok(None),
        }
    }
}

/// The first ready arm, looking from `start` round to `start - 1`.
fn scan(arms: &[Option<&dyn Arm>], start: usize) -> Option<usize> {
    let (before, after) = arms.split_at(start.min(arms.len()));
    let offset = before.len();
    after
        .iter()
        .enumerate()
        .map(|(i, arm)| (i + offset, arm))
        .chain(before.iter().enumerate())
        .find_map(|(index, arm)| arm.is_some_and(|arm| arm.is_ready()).then_some(index))
}

impl<F: Flavour> Default for Select<'_, F> {
    fn default() -> Self {
        Select::new()
    }
}

impl<F: Flavour> fmt::Debug for Select<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("receivers", &self.arms.iter().flatten().count())
            .finish_non_exhaustive()
    }
}
