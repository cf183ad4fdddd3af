//! The [`Waker`] behind [`block_on`](super::block_on): a small shared cell
//! per `block_on` call, reference-counted, pooled per thread.
//!
//! Two parts, because a `Waker` may be cloned, sent anywhere and kept
//! forever, while a fiber's frame is gone once `block_on` returns:
//!
//! - the **wait record** in the waiting fiber's frame: a [`FiberWake`],
//!   the message that wakes the fiber through its loop's mailbox. The
//!   fiber leaves the frame only once a wake-up that was promised is
//!   delivered (invariant 1, docs/ARCHITECTURE.md, applied to wake-ups);
//! - the **cell** ([`WakeCell`]), on the heap: what every `Waker` points
//!   at. It holds a reference count (the `block_on` call is one holder,
//!   each `Waker` clone another), the wait's state, and whom to wake. A
//!   waker that outlives the call finds the cell *detached* and does
//!   nothing; since the cell is only reused once the last reference is
//!   gone, no stale waker can ever reach a later wait, whatever became of
//!   the fiber or its stack slot.
//!
//! The state machine (one atomic byte):
//!
//! ```text
//!   POLLING ──wake──▶ NOTIFIED ──(owner re-polls)──▶ POLLING
//!      │                 ▲
//!   (owner parks)        │ wake: the waker that wins this CAS delivers
//!      ▼                 │       the wake-up (directly on the fiber's
//!   PARKED ──────────────┘       loop, else through its mailbox)
//!      │
//!   (owner cancelled) ──▶ DETACHED ◀── (block_on returns, from any state
//!                                        but an undelivered PARKED→NOTIFIED)
//! ```
//!
//! Only a waker that moves the cell from `PARKED` to `NOTIFIED` touches
//! the wait record, and the fiber does not leave (nor park again) before
//! that wake-up is delivered: a message is in a mailbox at most once, and
//! never outlives the frame it lives in.
//!
//! Cells are recycled through a free list of the thread that drops the
//! last reference, so a `block_on` whose wakers do not outlive it — or
//! whose old wakers are dropped on the loop's thread, as a channel does
//! when it replaces a registered waker — allocates nothing once warm
//! (invariant 3).

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering, fence};
use std::task::{RawWaker, RawWakerVTable, Waker};
use std::thread::Thread;

use crate::driver::remote::{Envelope, FiberWake, Remote};
use crate::rt::current;

/// The owner is running: polling the future or about to park.
const POLLING: u8 = 0;
/// A wake-up arrived since the owner's last poll began.
const NOTIFIED: u8 = 1;
/// The owner is suspended (fiber) or parked (thread) until woken.
const PARKED: u8 = 2;
/// The wait is over: wakers do nothing.
const DETACHED: u8 = 3;

/// Most cells kept in one thread's free list; beyond it they are freed.
const MAX_FREE_CELLS: usize = 256;

/// Whom a cell's wake-up goes to.
pub(crate) enum Target {
    /// Nobody: the cell is in a free list.
    Nobody,
    /// A fiber parked in `block_on`.
    Fiber {
        /// The wait record, in the fiber's frame.
        wake: NonNull<FiberWake>,
        /// The record's message head, computed by the fiber so that other
        /// threads never form a reference to the (non-`Sync`) record.
        envelope: NonNull<Envelope>,
        /// The fiber's loop's remote end. Alive while the fiber waits: the
        /// loop keeps it, and leaks it if it abandons the fiber.
        remote: *const Remote,
    },
    /// A plain thread blocked in `block_on` outside any fiber.
    Thread(Thread),
}

impl Target {
    /// The target for the running fiber, whose wait record is `wake` and
    /// whose loop's remote end is `remote`.
    pub(crate) fn fiber(wake: &FiberWake, remote: &Arc<Remote>) -> Target {
        Target::Fiber {
            wake: NonNull::from(wake),
            envelope: wake.envelope(),
            remote: Arc::as_ptr(remote),
        }
    }
}

/// What every `block_on` waker points at; see the module documentation.
pub(crate) struct WakeCell {
    /// The owner (the `block_on` call, until it returns) plus each `Waker`.
    refs: AtomicUsize,
    state: AtomicU8,
    /// Written only while the cell is exclusively held (fresh, or popped
    /// from a free list, or released by its last reference); read by
    /// wakers, which exist only while the owner holds it unchanged.
    target: UnsafeCell<Target>,
    /// The next cell of a free list; used only while in one.
    next_free: Cell<*mut WakeCell>,
}

// SAFETY: `refs` and `state` are atomics. `target` is written only while
// one thread holds the cell exclusively (refs 0 → 1 on acquire, 1 → 0 on
// release, both synchronised by the count's AcqRel ordering) and is
// otherwise only read; what it points to is used per the rules on
// `Target::Fiber` (the record only on its own loop's thread, the envelope
// through the mailbox). `next_free` belongs to the one free list the cell
// is in, on that list's thread.
unsafe impl Send for WakeCell {}
// SAFETY: as for Send.
unsafe impl Sync for WakeCell {}

impl WakeCell {
    const fn new() -> WakeCell {
        WakeCell {
            refs: AtomicUsize::new(0),
            state: AtomicU8::new(DETACHED),
            target: UnsafeCell::new(Target::Nobody),
            next_free: Cell::new(ptr::null_mut()),
        }
    }

    /// Records a wake-up; delivers it if the owner is parked.
    fn notify(&self) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                POLLING | PARKED => NOTIFIED,
                // Already notified, or the wait is over (a stale waker).
                _ => return,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(POLLING) => return,
                Ok(_) => return self.deliver(),
                Err(actual) => state = actual,
            }
        }
    }

    /// Wakes the parked owner; called only by the waker that moved the
    /// cell from `PARKED` to `NOTIFIED`, which the owner waits for.
    fn deliver(&self) {
        // SAFETY: the target is not written while any waker exists (see the
        // field), and the caller holds a reference.
        match unsafe { &*self.target.get() } {
            Target::Fiber {
                wake,
                envelope,
                remote,
            } => {
                let here = current::try_with_current(|lp| {
                    if !ptr::eq(Arc::as_ptr(lp.driver.remote()), *remote) {
                        return false;
                    }
                    // SAFETY: we are on the fiber's own loop's thread
                    // (invariant 2), and the fiber stays in `block_on`'s
                    // frame until this wake-up is delivered (invariant 1).
                    unsafe { wake.as_ref() }.deliver_here(&lp.sched);
                    true
                });
                if here == Some(true) {
                    return;
                }
                // Our own count keeps the remote end alive past the moment
                // the woken fiber lets its loop stop.
                // SAFETY: the fiber waits for this wake-up, so its loop
                // keeps its Remote (which came from Arc::as_ptr) alive.
                let remote = unsafe {
                    Arc::increment_strong_count(*remote);
                    Arc::from_raw(*remote)
                };
                // SAFETY: the message is in no mailbox — only the winner of
                // PARKED→NOTIFIED sends it, once per park — and its fiber
                // does not leave the frame before it is opened (invariant
                // 1); the loop opens it on its own thread (invariant 2).
                if unsafe { remote.send(*envelope) }.is_err() {
                    log::error!("loom: a block_on wake-up reached a loop that had stopped");
                }
            }
            Target::Thread(thread) => thread.unpark(),
            Target::Nobody => debug_assert!(false, "a parked WakeCell has a target"),
        }
    }
}

impl fmt::Debug for WakeCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeCell")
            .field("refs", &self.refs.load(Ordering::Relaxed))
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A thread's recycled cells.
struct FreeCells {
    head: Cell<*mut WakeCell>,
    len: Cell<usize>,
}

impl FreeCells {
    fn pop(&self) -> Option<NonNull<WakeCell>> {
        let head = NonNull::new(self.head.get())?;
        // SAFETY: cells in the list are exclusively the list's.
        self.head.set(unsafe { head.as_ref() }.next_free.get());
        self.len.set(self.len.get() - 1);
        Some(head)
    }

    /// Keeps `cell`, or gives it back if the list is full.
    fn push(&self, cell: NonNull<WakeCell>) -> Result<(), NonNull<WakeCell>> {
        if self.len.get() >= MAX_FREE_CELLS {
            return Err(cell);
        }
        // SAFETY: the caller hands the cell over exclusively.
        unsafe { cell.as_ref() }.next_free.set(self.head.get());
        self.head.set(cell.as_ptr());
        self.len.set(self.len.get() + 1);
        Ok(())
    }
}

impl Drop for FreeCells {
    fn drop(&mut self) {
        while let Some(cell) = self.pop() {
            // SAFETY: every cell was made by Box::leak in `Owner::new`, and
            // a listed cell has no other reference.
            drop(unsafe { Box::from_raw(cell.as_ptr()) });
        }
    }
}

thread_local! {
    static FREE: FreeCells = const {
        FreeCells { head: Cell::new(ptr::null_mut()), len: Cell::new(0) }
    };
}

/// Drops one reference to `cell`; the last one recycles it.
///
/// # Safety
/// The caller owns one reference, and does not use it again.
unsafe fn release(cell: NonNull<WakeCell>) {
    // SAFETY: our reference keeps the cell alive until this decrement.
    if unsafe { cell.as_ref() }
        .refs
        .fetch_sub(1, Ordering::Release)
        != 1
    {
        return;
    }
    // Every other holder's use of the cell happens before this point.
    fence(Ordering::Acquire);
    // SAFETY: the count reached zero: nobody else can reach the cell.
    unsafe { *cell.as_ref().target.get() = Target::Nobody };
    let kept = FREE.try_with(|free| free.push(cell));
    if !matches!(kept, Ok(Ok(()))) {
        // SAFETY: made by Box::leak in `Owner::new`; no reference is left.
        drop(unsafe { Box::from_raw(cell.as_ptr()) });
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// # Safety
/// `data` is a `WakeCell` the calling waker holds a reference to (the
/// `RawWaker` contract for wakers made here).
unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: contract.
    let cell = unsafe { &*data.cast::<WakeCell>() };
    // Relaxed as in `Arc::clone`: the new reference is made from an
    // existing one, which already keeps the cell alive.
    if cell.refs.fetch_add(1, Ordering::Relaxed) > isize::MAX as usize {
        std::process::abort();
    }
    RawWaker::new(data, &VTABLE)
}

/// # Safety
/// As for `clone`; consumes the waker's reference.
unsafe fn wake(data: *const ()) {
    // SAFETY: contract.
    unsafe {
        wake_by_ref(data);
        drop_waker(data);
    }
}

/// # Safety
/// As for `clone`.
unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: contract: our reference keeps the cell alive.
    unsafe { &*data.cast::<WakeCell>() }.notify();
}

/// # Safety
/// As for `clone`; consumes the waker's reference.
unsafe fn drop_waker(data: *const ()) {
    // SAFETY: contract: made from a NonNull cell pointer, and the
    // reference is the waker's, given up here.
    unsafe { release(NonNull::new_unchecked(data.cast_mut().cast())) };
}

/// The `block_on` call's hold on its cell: the waker it polls with, and
/// the owner's side of the state machine. Dropping it ends the wait.
pub(crate) struct Owner {
    cell: NonNull<WakeCell>,
}

impl Owner {
    /// A cell for a new wait, from this thread's free list or the heap.
    pub(crate) fn new(target: Target) -> Owner {
        let cell = FREE
            .try_with(FreeCells::pop)
            .ok()
            .flatten()
            .unwrap_or_else(|| NonNull::from(Box::leak(Box::new(WakeCell::new()))));
        // SAFETY: fresh or popped from the free list: nobody else holds it.
        let cell_ref = unsafe { cell.as_ref() };
        // SAFETY: as above: the target is ours to write.
        unsafe { *cell_ref.target.get() = target };
        cell_ref.state.store(POLLING, Ordering::Relaxed);
        // Published to wakers with the cell itself, which only reaches them
        // through a synchronising hand-off (the Context, a channel).
        cell_ref.refs.store(1, Ordering::Relaxed);
        Owner { cell }
    }

    fn cell(&self) -> &WakeCell {
        // SAFETY: the owner's reference keeps the cell alive.
        unsafe { self.cell.as_ref() }
    }

    /// The waker to poll with. It borrows the owner's reference (so it is
    /// never dropped); its clones take references of their own.
    pub(crate) fn waker(&self) -> ManuallyDrop<Waker> {
        let raw = RawWaker::new(self.cell.as_ptr().cast_const().cast(), &VTABLE);
        // SAFETY: the vtable keeps the RawWaker contract for cell pointers
        // holding a reference; this one uses the owner's, which outlives
        // the borrow (ManuallyDrop: never released through the waker).
        ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
    }

    /// After a `Pending` poll: parks (`true`) unless a wake-up arrived
    /// since the poll began (`false`; the owner then polls again).
    pub(crate) fn park(&self) -> bool {
        match self.cell().state.compare_exchange(
            POLLING,
            PARKED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(_) => {
                self.resume_polling();
                false
            }
        }
    }

    /// Whether the owner is still parked (no wake-up has come).
    pub(crate) fn is_parked(&self) -> bool {
        self.cell().state.load(Ordering::Acquire) == PARKED
    }

    /// Back to polling after a wake-up was delivered.
    pub(crate) fn resume_polling(&self) {
        self.cell().state.store(POLLING, Ordering::Release);
    }

    /// A parked owner gives up (cancellation): `true` if no waker had
    /// claimed the wake-up, `false` if one had, whose delivery the owner
    /// must then wait for before leaving.
    pub(crate) fn abandon_park(&self) -> bool {
        self.cell()
            .state
            .compare_exchange(PARKED, DETACHED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether a waker other than the owner's exists: only then can
    /// anything (perhaps another thread) wake a parked owner.
    pub(crate) fn has_wakers(&self) -> bool {
        self.cell().refs.load(Ordering::Relaxed) > 1
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // No wake-up is in flight here: the owner waits for one that was
        // claimed before it stops parking, and drops only while polling.
        self.cell().state.store(DETACHED, Ordering::Release);
        // SAFETY: the owner's reference, given up here.
        unsafe { release(self.cell) };
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cell().fmt(f)
    }
}
