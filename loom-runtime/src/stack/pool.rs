//! Pooled, guard-paged fiber stacks.
//!
//! Stacks are carved out of large anonymous reservations ("chunks"). Each
//! slot of a chunk is one guard page followed by the usable stack:
//!
//! ```text
//! chunk: | guard | stack 0 ........ | guard | stack 1 ........ | ...
//!                 ^limit      base^ ^top
//! ```
//!
//! The guard page sits *below* its stack because stacks grow downwards; it
//! is installed with `MADV_GUARD_INSTALL` (Linux ≥ 6.13), which marks the
//! page without splitting the mapping, or else with `mprotect(PROT_NONE)`,
//! which costs two mappings per stack and runs into `vm.max_map_count`
//! (`reserve.rs` makes chunks and their guards).
//! Memory is committed lazily by the kernel and `MADV_NOHUGEPAGE` keeps a
//! touched stack from pulling in a 2 MiB huge page, so an idle fiber costs
//! the pages it actually touched.
//!
//! The pool keeps one [`SizeClass`] per distinct stack size. Free slots are
//! reused LIFO (the most recently used stack is the most likely to be in
//! cache) and never unmapped while the pool lives. Fibers that have never
//! used a slot take fresh ones in address order, so pre-allocating a large
//! pool touches no memory.
//!
//! The number of stacks in use is bounded by the pool's limit: `max_fibers`,
//! or with `mprotect` guards the loop's share of the host's stack budget
//! (`budget.rs`) if that is smaller. A would-be spawner past the limit
//! waits for a permit (see `EventLoop::acquire_permit`). Should the kernel
//! refuse a mapping anyway (another runtime in the process took its share
//! first), the budget shrinks to what the pool holds and spawns wait there.

use std::cell::{Cell, RefCell};
use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use corosensei::stack::{STACK_ALIGNMENT, Stack, StackPointer};

use super::reserve::{Chunk, GuardKind, is_out_of_mappings, release_chunk, reserve_chunk};
use crate::sys::{page_size, round_up};

/// The smallest stack a fiber may ask for.
pub const MIN_STACK_BYTES: usize = 16 * 1024;
/// The largest stack a fiber may ask for.
pub const MAX_STACK_BYTES: usize = 1 << 30;
/// Growth never reserves fewer slots than this at once.
const MIN_CHUNK_SLOTS: usize = 16;

/// Checks a requested stack size and rounds it up to whole pages.
pub(crate) fn validate_stack_bytes(stack_bytes: usize) -> io::Result<usize> {
    if !(MIN_STACK_BYTES..=MAX_STACK_BYTES).contains(&stack_bytes) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "fiber stack size of {stack_bytes} bytes is outside the supported range \
                 {MIN_STACK_BYTES}..={MAX_STACK_BYTES}"
            ),
        ));
    }
    Ok(round_up(stack_bytes, page_size()))
}

/// One stack slot: where it is and which class it belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StackSlot {
    /// Lowest address of the guard page.
    pub(crate) guard: usize,
    /// One past the highest usable address.
    pub(crate) top: usize,
    /// Index of the size class.
    pub(crate) class: u32,
    /// The slot's number in its pool, over every class (for the profiler's
    /// per-slot fiber-track names).
    #[cfg(any(feature = "tracy-fibers", test))]
    pub(crate) index: u32,
}

impl StackSlot {
    pub(crate) fn stack_bytes(&self) -> usize {
        self.top - self.guard - page_size()
    }
}

/// A pooled stack lent to corosensei for one fiber's lifetime.
///
/// `base` sits below the fiber's control block and result slot, which the
/// runtime keeps at the top of the slot, out of corosensei's reach.
#[derive(Debug)]
pub(crate) struct PooledStack {
    base: StackPointer,
    limit: StackPointer,
}

impl PooledStack {
    /// # Panics
    /// If `base` is not above the slot's guard page by at least a page.
    #[inline]
    pub(crate) fn new(slot: &StackSlot, base: usize) -> PooledStack {
        assert!(
            base.is_multiple_of(STACK_ALIGNMENT)
                && base >= slot.guard + 2 * page_size()
                && base <= slot.top
        );
        PooledStack {
            base: NonZeroUsize::new(base).expect("stack base is not null"),
            limit: NonZeroUsize::new(slot.guard).expect("stack limit is not null"),
        }
    }
}

// SAFETY: corosensei requires a guard page below the usable stack and at
// least MIN_STACK_SIZE usable bytes. `limit` is the start of the slot's guard
// page, which StackPool::reserve_chunk installed (MADV_GUARD_INSTALL or
// PROT_NONE) before any slot of the chunk was handed out and which stays
// installed until the chunk is unmapped — and chunks are only unmapped when
// no slot is in use. `new` asserts `base` leaves at least one usable page
// (4 KiB = corosensei's MIN_STACK_SIZE) above the guard; in practice
// validate_stack_bytes guarantees MIN_STACK_BYTES minus the control block.
unsafe impl Stack for PooledStack {
    fn base(&self) -> StackPointer {
        self.base
    }

    fn limit(&self) -> StackPointer {
        self.limit
    }
}

#[derive(Debug)]
struct SizeClass {
    stack_bytes: usize,
    chunks: Vec<Chunk>,
    /// Capacity over all chunks.
    slots: usize,
    /// LIFO of recycled slots, linked through a word at each slot's top.
    free: Option<NonNull<FreeSlot>>,
}

/// What a free slot holds at its top: the next free slot of its class.
struct FreeSlot {
    next: Option<NonNull<FreeSlot>>,
    #[cfg(any(feature = "tracy-fibers", test))]
    index: u32,
}

/// How a pool is sized, decided by `Builder::build`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolLimits {
    /// Stacks of the default size reserved up front.
    pub(crate) prealloc: usize,
    /// The most stacks in use at once (the builder's `max_fibers`).
    pub(crate) max_fibers: usize,
    /// The most stacks this pool may reserve over every size class: the
    /// loop's share of the host's stack budget (`None`: unbounded).
    pub(crate) budget: Option<usize>,
    /// The `vm.max_map_count` that would let every loop reach `max_fibers`,
    /// for the message logged when the budget binds.
    pub(crate) max_map_count_needed: Option<usize>,
}

/// Bytes at the very top of every stack slot kept for the slot's
/// `SlotIdent` (`control.rs`), which another thread may read at any time:
/// the free-list node goes below them.
pub(crate) const IDENT_BYTES: usize = 64;

/// Whether some pool already logged that the stack budget binds: once per
/// process, however many loops and runtimes reach it.
static BUDGET_WARNED: AtomicBool = AtomicBool::new(false);

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct StackPool {
    classes: RefCell<Vec<SizeClass>>,
    guard_kind: GuardKind,
    /// Stacks handed out (or promised to a woken waiter) right now.
    in_use: Cell<usize>,
    max_fibers: usize,
    /// The most slots to reserve over every class (`usize::MAX`: no
    /// budget); lowered to the capacity if the kernel refuses a mapping.
    budget: Cell<usize>,
    max_map_count_needed: Option<usize>,
    loop_index: usize,
    /// Fiber-track names of the slots (`tracy-fibers`).
    #[cfg(any(feature = "tracy-fibers", test))]
    names: crate::profiling::names::SlotNames,
}

impl StackPool {
    /// Reserves `limits.prealloc` stacks of `stack_bytes` (already
    /// validated) for loop `loop_index`, guarded the `guard_kind` way.
    pub(crate) fn new(
        stack_bytes: usize,
        limits: PoolLimits,
        guard_kind: GuardKind,
        loop_index: usize,
    ) -> io::Result<StackPool> {
        assert!(limits.prealloc <= limits.max_fibers && limits.max_fibers > 0);
        let budget = limits.budget.unwrap_or(usize::MAX);
        assert!(
            limits.prealloc <= budget,
            "build checks fibers against the budget"
        );
        let pool = StackPool {
            classes: RefCell::new(Vec::new()),
            guard_kind,
            in_use: Cell::new(0),
            max_fibers: limits.max_fibers,
            budget: Cell::new(budget),
            max_map_count_needed: limits.max_map_count_needed,
            loop_index,
            #[cfg(any(feature = "tracy-fibers", test))]
            names: crate::profiling::names::SlotNames::lease(loop_index),
        };
        let class = pool.class_index(stack_bytes);
        if limits.prealloc > 0 {
            pool.grow(class, limits.prealloc)?;
        }
        Ok(pool)
    }

    pub(crate) fn guard_kind(&self) -> GuardKind {
        self.guard_kind
    }

    pub(crate) fn max_fibers(&self) -> usize {
        self.max_fibers
    }

    /// The loop's share of the stack budget, as it stands (`None`: none).
    pub(crate) fn budget(&self) -> Option<usize> {
        Some(self.budget.get()).filter(|&b| b != usize::MAX)
    }

    /// The most stacks in use at once: `max_fibers` or, if smaller, the
    /// budget.
    #[inline]
    pub(crate) fn limit(&self) -> usize {
        self.max_fibers.min(self.budget.get())
    }

    /// Stacks handed out (or promised to a woken waiter) right now.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.get()
    }

    /// Total slots reserved, over every class.
    pub(crate) fn capacity(&self) -> usize {
        self.classes.borrow().iter().map(|c| c.slots).sum()
    }

    /// Whether [`StackPool::try_take_permit`] would succeed.
    #[inline]
    pub(crate) fn has_permit(&self) -> bool {
        self.in_use.get() < self.limit()
    }

    /// Takes a permit to use one stack, if the limit allows.
    #[inline]
    pub(crate) fn try_take_permit(&self) -> bool {
        if self.has_permit() {
            self.in_use.set(self.in_use.get() + 1);
            true
        } else {
            if self.limit() < self.max_fibers {
                self.warn_budget_binds();
            }
            false
        }
    }

    /// Whether a permit being given back may go to a waiter: not while
    /// more are out than the limit (after the budget shrank).
    pub(crate) fn may_hand_on_permit(&self) -> bool {
        self.in_use.get() <= self.limit()
    }

    /// Gives a permit back (the caller hands it to a waiter instead when
    /// one is queued and [`StackPool::may_hand_on_permit`]).
    pub(crate) fn return_permit(&self) {
        assert!(self.in_use.get() > 0, "stack permit returned twice");
        self.in_use.set(self.in_use.get() - 1);
    }

    /// Hands out a slot of `stack_bytes`; the caller holds a permit.
    #[inline]
    pub(crate) fn take_slot(&self, stack_bytes: usize) -> io::Result<StackSlot> {
        let class = self.class_index(stack_bytes);
        if let Some(slot) = self.take_existing(class) {
            return Ok(slot);
        }
        self.take_new_slot(class, stack_bytes)
    }

    /// Grows `class` (within the budget) and hands out one of its new slots.
    #[cold]
    #[inline(never)]
    fn take_new_slot(&self, class: usize, stack_bytes: usize) -> io::Result<StackSlot> {
        let class_slots = self.classes.borrow()[class].slots;
        let room = self.budget.get().saturating_sub(self.capacity());
        if room == 0 {
            // Only reached with several stack sizes: the permit count keeps
            // a single size within what is reserved.
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "no {} KiB fiber stack is free and loop {}'s stack budget ({} stacks, \
                     bounded by vm.max_map_count) is reserved by stacks of other sizes; \
                     use fewer stack sizes or raise `sysctl -w vm.max_map_count=<more>`",
                    stack_bytes / 1024,
                    self.loop_index,
                    self.budget.get()
                ),
            ));
        }
        let headroom = self.max_fibers.saturating_sub(class_slots).max(1);
        let mut slots = class_slots.max(MIN_CHUNK_SLOTS).min(headroom).min(room);
        loop {
            match self.grow(class, slots) {
                Ok(()) => break,
                Err(e) if is_out_of_mappings(&e, self.guard_kind) => {
                    if slots > 1 {
                        // Take what still fits rather than nothing.
                        slots /= 2;
                        continue;
                    }
                    // The kernel refuses what the budget promised: another
                    // runtime or the program mapped more since `build`.
                    self.budget.set(self.capacity());
                    self.warn_budget_binds();
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self
            .take_existing(class)
            .expect("a freshly reserved chunk has free slots"))
    }

    /// Logs, once per process, that spawns wait at the stack budget.
    #[cold]
    fn warn_budget_binds(&self) {
        // A load first: spawns at the limit call this every time they wait.
        if BUDGET_WARNED.load(Ordering::Relaxed) || BUDGET_WARNED.swap(true, Ordering::Relaxed) {
            return;
        }
        let raise = match self.max_map_count_needed {
            Some(needed) => format!("`sysctl -w vm.max_map_count={needed}`"),
            None => "`sysctl -w vm.max_map_count=<more>`".to_owned(),
        };
        log::warn!(
            "loom: loop {} holds {} fiber stacks, all that fit under vm.max_map_count with \
             mprotect guard pages (two mappings per stack; Linux < 6.13 has no \
             MADV_GUARD_INSTALL), below max_fibers = {}: further spawns wait for a stack to be \
             freed. To reach max_fibers, raise the limit with {raise}.",
            self.loop_index,
            self.budget.get(),
            self.max_fibers
        );
    }

    /// Puts a slot back on its class's free list; the permit is separate.
    ///
    /// # Safety
    /// `slot` came from this pool's `take_slot` and nothing uses its memory
    /// any more.
    pub(crate) unsafe fn put_slot(&self, slot: StackSlot) {
        let mut classes = self.classes.borrow_mut();
        let class = &mut classes[slot.class as usize];
        // Below the slot's SlotIdent, which another thread may be reading.
        let node = (slot.top - IDENT_BYTES - size_of::<FreeSlot>()) as *mut FreeSlot;
        // SAFETY: the slot's memory is mapped read-write and unused (this
        // function's contract); a page-aligned top minus 64 and the node's
        // size is aligned for a pointer.
        unsafe {
            node.write(FreeSlot {
                next: class.free,
                #[cfg(any(feature = "tracy-fibers", test))]
                index: slot.index,
            })
        };
        class.free = NonNull::new(node);
    }

    /// Marks the chunk holding `slot` as never to be unmapped: a fiber on it
    /// did not finish, so its stack may still be referenced.
    pub(crate) fn leak_slot(&self, slot: &StackSlot) {
        let mut classes = self.classes.borrow_mut();
        for chunk in &mut classes[slot.class as usize].chunks {
            if (chunk.start..chunk.start + chunk.len).contains(&slot.guard) {
                chunk.leaked = true;
            }
        }
    }

    fn class_index(&self, stack_bytes: usize) -> usize {
        let mut classes = self.classes.borrow_mut();
        if let Some(i) = classes.iter().position(|c| c.stack_bytes == stack_bytes) {
            return i;
        }
        classes.push(SizeClass {
            stack_bytes,
            chunks: Vec::new(),
            slots: 0,
            free: None,
        });
        classes.len() - 1
    }

    fn take_existing(&self, class_index: usize) -> Option<StackSlot> {
        let mut classes = self.classes.borrow_mut();
        let class = &mut classes[class_index];
        let stride = class.stack_bytes + page_size();
        if let Some(node) = class.free {
            // SAFETY: nodes on the free list were written by `put_slot` into
            // slots that are still mapped and unused.
            class.free = unsafe { node.as_ref().next };
            #[cfg(any(feature = "tracy-fibers", test))]
            // SAFETY: as above.
            let index = unsafe { node.as_ref().index };
            let top = node.as_ptr() as usize + size_of::<FreeSlot>() + IDENT_BYTES;
            return Some(StackSlot {
                guard: top - stride,
                top,
                class: class_index as u32,
                #[cfg(any(feature = "tracy-fibers", test))]
                index,
            });
        }
        let chunk = class.chunks.iter_mut().find(|c| c.fresh < c.slots)?;
        let guard = chunk.start + chunk.fresh * stride;
        #[cfg(any(feature = "tracy-fibers", test))]
        let index = (chunk.first_index + chunk.fresh) as u32; // < u32::MAX: `grow`
        chunk.fresh += 1;
        Some(StackSlot {
            guard,
            top: guard + stride,
            class: class_index as u32,
            #[cfg(any(feature = "tracy-fibers", test))]
            index,
        })
    }

    /// Reserves a chunk of `slots` more stacks for `class_index`.
    fn grow(&self, class_index: usize, slots: usize) -> io::Result<()> {
        let stack_bytes = self.classes.borrow()[class_index].stack_bytes;
        #[cfg(any(feature = "tracy-fibers", test))]
        let first_index = self.capacity();
        #[cfg(any(feature = "tracy-fibers", test))]
        if first_index + slots > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "a stack pool is limited to 2^32 - 1 slots",
            ));
        }
        #[cfg_attr(not(any(feature = "tracy-fibers", test)), allow(unused_mut))]
        let mut chunk = reserve_chunk(stack_bytes, slots, self.guard_kind)?;
        #[cfg(any(feature = "tracy-fibers", test))]
        {
            chunk.first_index = first_index;
            self.names.reserve(first_index + chunk.slots);
        }
        log::debug!(
            "reserved {slots} fiber stacks of {} KiB ({:?} guards)",
            stack_bytes / 1024,
            self.guard_kind
        );
        let mut classes = self.classes.borrow_mut();
        let class = &mut classes[class_index];
        class.slots += chunk.slots;
        class.chunks.push(chunk);
        Ok(())
    }
}

impl StackPool {
    /// The fiber-track name of `slot` (`tracy-fibers`): a process-lifetime
    /// string, made when the slot was reserved.
    #[cfg(any(feature = "tracy-fibers", test))]
    pub(crate) fn track_name(&self, slot: &StackSlot) -> *const std::ffi::c_char {
        self.names.get(slot.index)
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        for class in self.classes.get_mut().drain(..) {
            for chunk in class.chunks {
                if chunk.leaked {
                    // A fiber that never finished may still point into it;
                    // leave the memory (and its guard records) in place.
                    continue;
                }
                release_chunk(&chunk);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(stack_bytes: usize, prealloc: usize, max_fibers: usize) -> StackPool {
        budgeted_pool(stack_bytes, prealloc, max_fibers, None)
    }

    fn budgeted_pool(
        stack_bytes: usize,
        prealloc: usize,
        max_fibers: usize,
        budget: Option<usize>,
    ) -> StackPool {
        let limits = PoolLimits {
            prealloc,
            max_fibers,
            budget,
            max_map_count_needed: None,
        };
        StackPool::new(
            stack_bytes,
            limits,
            crate::stack::reserve::detect_guard_kind(),
            0,
        )
        .unwrap()
    }

    #[test]
    fn slots_are_reused_lifo_and_classes_are_separate() {
        let pool = pool(64 * 1024, 4, 100);
        assert_eq!(pool.capacity(), 4);
        let a = pool.take_slot(64 * 1024).unwrap();
        let b = pool.take_slot(64 * 1024).unwrap();
        assert_eq!(
            b.guard, a.top,
            "fresh slots are handed out in address order"
        );
        assert_eq!(a.stack_bytes(), 64 * 1024);
        // SAFETY: `a` and `b` came from this pool and are unused.
        unsafe {
            pool.put_slot(a);
            pool.put_slot(b);
        }
        assert_eq!(pool.take_slot(64 * 1024).unwrap().top, b.top);
        assert_eq!(pool.take_slot(64 * 1024).unwrap().top, a.top);
        let small = pool.take_slot(16 * 1024).unwrap();
        assert_eq!(small.stack_bytes(), 16 * 1024);
        assert_ne!(small.class, a.class);
        assert_eq!(pool.capacity(), 4 + MIN_CHUNK_SLOTS);
    }

    #[test]
    fn slots_keep_their_pool_wide_index_through_reuse() {
        let pool = pool(64 * 1024, 2, 100);
        let a = pool.take_slot(64 * 1024).unwrap();
        let b = pool.take_slot(64 * 1024).unwrap();
        // Another class's chunk continues the numbering.
        let c = pool.take_slot(16 * 1024).unwrap();
        assert_eq!((a.index, b.index, c.index), (0, 1, 2));
        // SAFETY: `a` came from this pool and is unused.
        unsafe { pool.put_slot(a) };
        assert_eq!(pool.take_slot(64 * 1024).unwrap().index, 0);
        // A chunk added by growth continues where the last one ended.
        let d = pool.take_slot(64 * 1024).unwrap();
        assert_eq!(d.index as usize, 2 + MIN_CHUNK_SLOTS);
        assert_ne!(pool.track_name(&a), pool.track_name(&d));
    }

    #[test]
    fn permits_are_bounded() {
        let pool = pool(16 * 1024, 0, 2);
        assert!(pool.try_take_permit());
        assert!(pool.try_take_permit());
        assert!(!pool.try_take_permit());
        pool.return_permit();
        assert!(pool.try_take_permit());
    }

    #[test]
    fn the_budget_bounds_permits_and_reservations() {
        let pool = budgeted_pool(16 * 1024, 4, 1000, Some(40));
        assert_eq!((pool.limit(), pool.budget()), (40, Some(40)));
        let slots: Vec<_> = (0..40)
            .map(|_| {
                assert!(pool.try_take_permit());
                pool.take_slot(16 * 1024).unwrap()
            })
            .collect();
        assert_eq!(pool.capacity(), 40, "growth stops at the budget exactly");
        assert!(!pool.try_take_permit(), "the 41st stack waits");
        pool.return_permit();
        // SAFETY: the slot came from this pool and is unused.
        unsafe { pool.put_slot(slots[0]) };
        assert!(pool.try_take_permit());
        assert_eq!(pool.take_slot(16 * 1024).unwrap().top, slots[0].top);
        // Another size finds the budget reserved: a clear error, no mapping.
        let err = pool.take_slot(32 * 1024).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(err.to_string().contains("vm.max_map_count"), "{err}");
        assert_eq!(pool.capacity(), 40);
    }

    #[test]
    fn permits_over_a_shrunken_budget_are_not_handed_on() {
        let pool = budgeted_pool(16 * 1024, 0, 10, Some(8));
        for _ in 0..3 {
            assert!(pool.try_take_permit());
        }
        // As after the kernel refused a mapping with 2 stacks reserved.
        pool.budget.set(2);
        assert!(!pool.may_hand_on_permit());
        pool.return_permit();
        assert!(pool.may_hand_on_permit());
        assert!(!pool.has_permit());
    }

    #[test]
    fn stack_sizes_are_checked_and_rounded() {
        assert!(validate_stack_bytes(4096).is_err());
        assert!(validate_stack_bytes(MAX_STACK_BYTES + 1).is_err());
        assert_eq!(
            validate_stack_bytes(MIN_STACK_BYTES + 1).unwrap(),
            MIN_STACK_BYTES + page_size()
        );
    }
}
