//! A reusable barrier: `n` parties wait until all have arrived.

use std::fmt;
use std::io;

use super::flavour::{Flavour, RawLock, Shared};
use super::waiter::{WaitList, wait_until};

/// Lets `n` fibers (or threads, for the [`Shared`] flavour) wait until all
/// of them have arrived, like std's `Barrier`; reusable.
///
/// A waiter that is cancelled withdraws: its arrival is taken back, so the
/// others are not released one short.
///
/// This is the generic type; use [`loom::sync::Barrier`](super::Barrier)
/// or [`loom::sync::local::Barrier`](super::local::Barrier).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use loom::sync::local::Barrier;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let barrier = Rc::new(Barrier::new(3));
///     let fibers: Vec<_> = (0..3)
///         .map(|_| {
///             let barrier = barrier.clone();
///             loom::spawn(move || barrier.wait().map(|r| r.is_leader()))
///         })
///         .collect();
///     let mut leaders = 0;
///     for fiber in fibers {
///         leaders += usize::from(fiber.join().unwrap()?);
///     }
///     assert_eq!(leaders, 1);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Barrier<F: Flavour = Shared> {
    state: F::Lock<State>,
}

struct State {
    parties: usize,
    arrived: usize,
    /// Bumped each time the barrier opens; a waiter waits for a new one,
    /// so a fast party's next `wait` cannot be mistaken for this round's.
    generation: u64,
    waiters: WaitList,
}

impl<F: Flavour> Barrier<F> {
    /// A barrier for `parties` waiters (0 behaves as 1, as in std).
    pub fn new(parties: usize) -> Self {
        Barrier {
            state: F::Lock::new(State {
                parties,
                arrived: 0,
                generation: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Waits until all parties have called `wait`. Exactly one of them —
    /// the last to arrive — gets a result whose
    /// [`is_leader`](BarrierWaitResult::is_leader) is true.
    ///
    /// # Errors
    /// The cancellation error ([`crate::fiber::is_cancelled`]) if the
    /// calling fiber is cancelled before the barrier opens, `TimedOut` if
    /// its call-tree deadline ([`crate::time::with_deadline`]) passes
    /// first; its arrival is then withdrawn.
    ///
    /// # Panics
    /// A [`Local`](super::Local) barrier waited on outside a fiber.
    ///
    /// # Examples
    ///
    /// A fiber and a plain thread meeting:
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let barrier = Arc::new(loom::sync::Barrier::new(2));
    ///     let thread = std::thread::spawn({
    ///         let barrier = barrier.clone();
    ///         move || barrier.wait().map(|r| r.is_leader())
    ///     });
    ///     let leader = barrier.wait()?.is_leader();
    ///     assert_ne!(leader, thread.join().unwrap()?);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait(&self) -> io::Result<BarrierWaitResult> {
        let arrival = self.state.with(|state| {
            state.arrived += 1;
            if state.arrived < state.parties {
                return Err(state.generation);
            }
            state.arrived = 0;
            state.generation = state.generation.wrapping_add(1);
            Ok(state.waiters.notify_all())
        });
        let generation = match arrival {
            Ok(wakes) => {
                wakes.deliver();
                return Ok(BarrierWaitResult { leader: true });
            }
            Err(generation) => generation,
        };
        let waited = wait_until(
            &self.state,
            |state| &state.waiters,
            None,
            F::CROSS_THREAD,
            "Barrier::wait",
            |state| (state.generation != generation).then_some(()),
        );
        let Err(interrupted) = waited else {
            return Ok(BarrierWaitResult { leader: false });
        };
        let withdrawn = self.state.with(|state| {
            let open = state.generation != generation;
            if !open {
                state.arrived -= 1;
            }
            !open
        });
        if withdrawn {
            Err(interrupted.into_io_error())
        } else {
            // It opened as the cancellation or the deadline came: the
            // others counted on this arrival, so it stands (a cancelled
            // fiber's next blocking call fails).
            Ok(BarrierWaitResult { leader: false })
        }
    }
}

impl<F: Flavour> fmt::Debug for Barrier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parties, arrived) = self.state.with(|state| (state.parties, state.arrived));
        f.debug_struct("Barrier")
            .field("parties", &parties)
            .field("arrived", &arrived)
            .finish_non_exhaustive()
    }
}

/// What [`Barrier::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// Whether this waiter was the last to arrive (one per round).
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}
