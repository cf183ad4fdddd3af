//! The fiber control block: everything the runtime knows about one fiber.
//!
//! It lives at the very top of the fiber's own stack slot, above the range
//! handed to corosensei, next to the slot for the fiber's result:
//!
//! ```text
//! slot top ─▶ +-------------------------+
//!             | SlotIdent               |  IDENT_BYTES
//!             +-------------------------+
//!             | FiberControl            |  CONTROL_BYTES
//!             +-------------------------+
//!             | thread::Result<T>       |  written when the fiber returns
//!   base ───▶ +-------------------------+
//!             | corosensei frames, the  |
//!             | closure, the fiber's    |
//!             | own frames ... ▼        |
//!  limit ───▶ +-------------------------+
//!             | guard page              |
//!             +-------------------------+
//! ```
//!
//! So spawning allocates nothing, and the stack-overflow handler finds the
//! name of an overflowing fiber at a fixed offset from the slot's top.
//!
//! The [`SlotIdent`] above the block repeats the fiber's id and name in
//! atomics, for the stall monitor's thread: it may read a slot whose fiber
//! has just finished and whose slot is being reused, and only atomic
//! accesses make that race defined. Nothing writes those bytes otherwise
//! (the pool's free-list node sits below them).

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::mem::MaybeUninit;
use std::num::NonZeroU64;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::Instant;

use corosensei::{Coroutine, Yielder};

use super::pool::{IDENT_BYTES, PooledStack, StackSlot};
use crate::list::Link;
use crate::stats::WaitKind;
use crate::sys::round_up;

/// The coroutine type every fiber runs in.
pub(crate) type FiberCoroutine = Coroutine<(), (), (), PooledStack>;

/// Bytes reserved for the control block, under the [`SlotIdent`].
pub(crate) const CONTROL_BYTES: usize = round_up(size_of::<FiberControl>(), 64);

/// Everything above a fiber's result: its identity and control block.
pub(crate) const TOP_BYTES: usize = IDENT_BYTES + CONTROL_BYTES;

/// The address of the control block of the slot ending at `top`.
pub(crate) const fn control_addr(top: usize) -> usize {
    top - TOP_BYTES
}

/// A fiber's id and name in atomics, at the top of its slot, written at
/// spawn: what another thread may read about the fiber running in a slot
/// (see the module documentation).
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct SlotIdent {
    id: AtomicU64,
    /// The name's length byte, then its bytes, little-endian in words.
    name: [AtomicU64; NAME_WORDS],
}

const NAME_WORDS: usize = (1 + MAX_NAME_BYTES).div_ceil(8);
const _: () = assert!(size_of::<SlotIdent>() <= IDENT_BYTES);

impl SlotIdent {
    /// The identity of the slot whose control block is at `control`.
    pub(crate) fn of(control: *const FiberControl) -> *const SlotIdent {
        (control as usize + CONTROL_BYTES) as *const SlotIdent
    }

    /// The identity at the top of the slot ending at `top`.
    ///
    /// # Safety
    /// `top` is the top of a mapped stack slot, whose top [`IDENT_BYTES`]
    /// are only ever accessed through a `SlotIdent` (fresh memory reads as
    /// an id of 0 and no name).
    pub(crate) unsafe fn at<'a>(top: usize) -> &'a SlotIdent {
        // SAFETY: mapped, page-aligned top minus 64 is aligned for the
        // type, and only atomics live there (contract).
        unsafe { &*((top - IDENT_BYTES) as *const SlotIdent) }
    }

    #[inline]
    pub(crate) fn publish(&self, id: u64, name: &FiberName) {
        self.id.store(id, Release);
        if name.len == 0 {
            // Most fibers: a zero length is the whole name.
            self.name[0].store(0, Release);
            return;
        }
        self.publish_name(name);
    }

    #[cold]
    fn publish_name(&self, name: &FiberName) {
        let mut bytes = [0u8; NAME_WORDS * 8];
        bytes[0] = name.len;
        let len = usize::from(name.len);
        bytes[1..=len].copy_from_slice(&name.bytes[..len]);
        // Only the words the name reaches: a reader stops at its length.
        let words = (1 + len).div_ceil(8);
        for (word, chunk) in self.name[..words].iter().zip(bytes.chunks_exact(8)) {
            // Release: a reader that sees a word sees everything the loop
            // did before, such as the switch counter's bump that retired
            // this slot's previous fiber.
            word.store(
                u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
                Release,
            );
        }
    }

    /// The id and name last published; torn if a spawn is writing them
    /// right now (the reader checks that the loop did not move on).
    pub(crate) fn read(&self) -> (u64, FiberName) {
        let mut bytes = [0u8; NAME_WORDS * 8];
        for (word, chunk) in self.name.iter().zip(bytes.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&word.load(Acquire).to_le_bytes());
        }
        let mut name = FiberName::empty();
        let len = usize::from(bytes[0]).min(MAX_NAME_BYTES);
        let mut end = len;
        while std::str::from_utf8(&bytes[1..1 + end]).is_err() {
            end -= 1; // torn: keep what is valid
        }
        name.bytes[..end].copy_from_slice(&bytes[1..1 + end]);
        name.len = end as u8;
        (self.id.load(Acquire), name)
    }
}

/// Written into a control block while its fiber exists; the overflow
/// handler trusts only blocks that carry it.
const LIVE_MAGIC: u32 = 0x4c4f_4f4d; // "LOOM"

/// Where a fiber is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FiberState {
    /// In the run queue.
    Runnable,
    /// The fiber the loop is executing.
    Running,
    /// Blocked in a blocking call; only `Scheduler::wake` makes it runnable.
    Suspended,
    /// Returned (or panicked); its result waits for the JoinHandle.
    Finished,
}

/// The longest fiber name kept, in bytes; longer names are truncated at a
/// character boundary.
pub const MAX_NAME_BYTES: usize = 46;

/// A fiber name stored inline, so naming a fiber never allocates.
#[derive(Clone, Copy)]
pub(crate) struct FiberName {
    len: u8,
    bytes: [u8; MAX_NAME_BYTES],
}

impl FiberName {
    pub(crate) const fn empty() -> Self {
        FiberName {
            len: 0,
            bytes: [0; MAX_NAME_BYTES],
        }
    }

    pub(crate) fn new(name: &str) -> Self {
        let mut end = name.len().min(MAX_NAME_BYTES);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut out = FiberName::empty();
        out.bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
        out.len = end as u8;
        out
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        if self.len == 0 {
            return None;
        }
        // Built from a &str cut at a char boundary.
        std::str::from_utf8(&self.bytes[..self.len as usize]).ok()
    }
}

impl std::fmt::Debug for FiberName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// See the module documentation. Fields are `Cell`s because the loop, the
/// fiber itself and JoinHandles all reach it through shared references.
#[repr(C)]
pub(crate) struct FiberControl {
    magic: Cell<u32>,
    /// Membership of the run queue.
    pub(crate) run_link: Link,
    /// Membership of the loop's list of unfinished fibers.
    pub(crate) all_link: Link,
    pub(crate) state: Cell<FiberState>,
    /// What the fiber waits for while suspended, for the loop's counts.
    pub(crate) wait_kind: Cell<WaitKind>,
    /// Sticky: every blocking call from now on returns `ECANCELED`.
    pub(crate) cancelled: Cell<bool>,
    /// The JoinHandle was dropped; nobody will collect the result.
    pub(crate) detached: Cell<bool>,
    /// The fiber blocked in `join` on this one.
    pub(crate) joiner: Cell<Option<NonNull<FiberControl>>>,
    /// The call-tree deadline (`loom::time::with_deadline`) bounding every
    /// blocking call of this fiber; `None` at spawn.
    pub(crate) deadline: Cell<Option<Instant>>,
    /// The address of the scheduler of the fiber's loop, set when admitted:
    /// an identity for the scheduler's debug checks of invariant 2, never
    /// dereferenced (so this layer needs no scheduler type).
    pub(crate) home: Cell<*const ()>,
    /// Set when the fiber first runs.
    pub(crate) yielder: Cell<*const Yielder<(), ()>>,
    /// Initialised by spawn, moved out when the fiber finishes.
    pub(crate) coroutine: UnsafeCell<MaybeUninit<FiberCoroutine>>,
    /// Where the fiber's `thread::Result<T>` goes (type known to JoinHandle).
    pub(crate) result: *mut u8,
    pub(crate) slot: StackSlot,
    pub(crate) id: u64,
    pub(crate) name: FiberName,
    /// Profiler state (`tracy`): the fiber's open zones or its track name.
    #[cfg(any(feature = "tracy", test))]
    pub(crate) profile: crate::profiling::record::FiberProfile,
}

impl FiberControl {
    pub(crate) fn new(slot: StackSlot, result: *mut u8, id: u64, name: FiberName) -> Self {
        FiberControl {
            magic: Cell::new(LIVE_MAGIC),
            run_link: Link::new(),
            all_link: Link::new(),
            state: Cell::new(FiberState::Runnable),
            wait_kind: Cell::new(WaitKind::Io),
            cancelled: Cell::new(false),
            detached: Cell::new(false),
            joiner: Cell::new(None),
            deadline: Cell::new(None),
            home: Cell::new(std::ptr::null()),
            yielder: Cell::new(std::ptr::null()),
            coroutine: UnsafeCell::new(MaybeUninit::uninit()),
            result,
            slot,
            id,
            name,
            #[cfg(any(feature = "tracy", test))]
            profile: crate::profiling::record::FiberProfile::new(),
        }
    }

    /// Called just before the slot goes back to the pool.
    pub(crate) fn retire(&self) {
        debug_assert_eq!(self.state.get(), FiberState::Finished);
        self.magic.set(0);
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state.get() == FiberState::Finished
    }

    /// Gives this fiber — just spawned, not yet run — the call-tree
    /// deadline in force on `spawner`. For children that cannot outlive
    /// their spawner's call (scoped fibers), whose work is part of that
    /// call; a plain `spawn`'s child may outlive it, so it starts with none.
    pub(crate) fn inherit_deadline(&self, spawner: &FiberControl) {
        self.deadline.set(spawner.deadline.get());
    }
}

/// What the overflow handler prints about a fiber.
pub(crate) struct OverflowReport {
    name: FiberName,
    pub(crate) id: u64,
    pub(crate) stack_bytes: usize,
}

impl OverflowReport {
    pub(crate) fn name(&self) -> &[u8] {
        match self.name.len {
            0 => b"<unnamed>",
            n => &self.name.bytes[..n as usize],
        }
    }
}

/// Reads the control block of the slot ending at `top`, if a fiber lives
/// there. Async-signal-safe: plain loads, no allocation, no locks.
///
/// # Safety
/// `top` is the end of a registered, mapped stack slot.
pub(crate) unsafe fn describe_for_overflow(top: usize) -> Option<OverflowReport> {
    let control = control_addr(top) as *const FiberControl;
    // SAFETY: the slot's top page is mapped (this function's contract); a
    // stale or never-used block simply lacks the magic. Volatile keeps the
    // compiler from assuming anything about memory it did not see written.
    let magic = unsafe { std::ptr::read_volatile(&raw const (*control).magic) }.get();
    if magic != LIVE_MAGIC {
        return None;
    }
    // SAFETY: a live block was fully initialised by spawn; these fields are
    // plain data written before the fiber first ran.
    unsafe {
        Some(OverflowReport {
            name: std::ptr::read_volatile(&raw const (*control).name),
            id: std::ptr::read_volatile(&raw const (*control).id),
            stack_bytes: (*control).slot.stack_bytes(),
        })
    }
}

/// A fiber's identifier, unique among the fibers of one runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FiberId(NonZeroU64);

impl FiberId {
    pub(crate) fn new(raw: u64) -> FiberId {
        FiberId(NonZeroU64::new(raw).expect("fiber ids start at 1"))
    }

    /// The id as a number.
    pub fn as_u64(&self) -> NonZeroU64 {
        self.0
    }
}

impl fmt::Display for FiberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A description of a fiber: its id and name.
#[derive(Clone, Copy, Debug)]
pub struct Fiber {
    id: FiberId,
    name: FiberName,
}

impl Fiber {
    pub(crate) fn of(control: &FiberControl) -> Fiber {
        Fiber {
            id: FiberId::new(control.id),
            name: control.name,
        }
    }

    /// The fiber's id.
    pub fn id(&self) -> FiberId {
        self.id
    }

    /// The fiber's name, if it was given one. The main fiber is `"main"`.
    pub fn name(&self) -> Option<&str> {
        self.name.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_truncated_at_char_boundaries() {
        assert_eq!(FiberName::new("conn").as_str(), Some("conn"));
        assert_eq!(FiberName::new("").as_str(), None);
        let long = "é".repeat(40); // 80 bytes
        let name = FiberName::new(&long);
        assert_eq!(name.as_str().unwrap().len(), 46);
        assert!(long.starts_with(name.as_str().unwrap()));
    }
}
