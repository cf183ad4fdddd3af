//! The blocks a `spawn_on` carries its closure and result in (see
//! `rt/cross.rs`): 512-byte slots cached per thread, so that a steady
//! stream of `spawn_on`s allocates nothing.
//!
//! A slot goes back to the cache of the thread that made it, from
//! whichever thread lets go of it last: the cache's home is a [`Mailbox`],
//! which is exactly a multi-producer stack its owner takes whole. When the
//! owner thread exits the mailbox is closed, and a slot returned later is
//! freed by whoever returns it.

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::driver::mailbox::{Drain, Mailbox, Node};

/// Bytes of a [`Slot`] a `SpawnJob` may use: room for the packet, its
/// envelope and a closure of a few hundred bytes.
pub(super) const SLOT_JOB_BYTES: usize = 448;
/// A [`Slot`]'s alignment: its own cache lines.
pub(super) const SLOT_ALIGN: usize = 64;
/// The most slots one thread creates. Past that, `spawn_on`s from the
/// thread while all of them are in use allocate their block instead.
pub(super) const MAX_CACHED_SLOTS: usize = 1024;

/// A recycled block for one `spawn_on`: a [`SpawnJob`] while in use; while
/// cached, its first bytes are the free list's mailbox `Node` (where a
/// job's envelope has its own).
#[repr(C, align(64))]
pub(super) struct Slot {
    job: [MaybeUninit<u8>; SLOT_JOB_BYTES],
    /// The cache of the thread that made the slot: where it goes back.
    home: Arc<SlotHome>,
}

/// Where slots come back to their thread's cache, from any thread. A
/// mailbox is exactly that: a multi-producer stack the owner takes whole,
/// closed (refusing returns, which then free the slot) when the owner
/// thread exits. Its sleeping handshake is unused.
struct SlotHome {
    returned: Mailbox,
}

/// A thread's cache of [`Slot`]s.
struct SlotCache {
    home: Arc<SlotHome>,
    /// Slots taken back from `home`, not handed out again yet.
    free: RefCell<Drain>,
    /// Slots this thread created (at most [`MAX_CACHED_SLOTS`]).
    created: Cell<usize>,
}

thread_local! {
    static SLOTS: SlotCache = SlotCache::new();
}

impl SlotCache {
    fn new() -> SlotCache {
        let home = Arc::new(SlotHome {
            returned: Mailbox::new(),
        });
        let free = RefCell::new(home.returned.take_all());
        SlotCache {
            home,
            free,
            created: Cell::new(0),
        }
    }

    fn take(&self) -> Option<NonNull<Slot>> {
        let mut free = self.free.borrow_mut();
        let node = match free.next() {
            Some(node) => Some(node),
            None => {
                *free = self.home.returned.take_all();
                free.next()
            }
        };
        if let Some(node) = node {
            return Some(node.cast::<Slot>());
        }
        let slot = self.create()?;
        // A spare: a spawn that starts right after a join may find the
        // previous block still on its way back from the other loop (its
        // fiber let go of it last), and should not allocate for that.
        if let Some(spare) = self.create() {
            // SAFETY: a fresh slot nobody references.
            unsafe { give_back_slot(spare) };
        }
        Some(slot)
    }

    /// A new slot, unless this thread made [`MAX_CACHED_SLOTS`] already.
    fn create(&self) -> Option<NonNull<Slot>> {
        if self.created.get() >= MAX_CACHED_SLOTS {
            return None;
        }
        self.created.set(self.created.get() + 1);
        let slot = Box::new(Slot {
            job: [MaybeUninit::uninit(); SLOT_JOB_BYTES],
            home: Arc::clone(&self.home),
        });
        Some(NonNull::from(Box::leak(slot)))
    }
}

impl Drop for SlotCache {
    fn drop(&mut self) {
        self.free.get_mut().for_each(free_cached);
        self.home.returned.close().for_each(free_cached);
    }
}

/// Frees a slot taken off the cache as it closes. `Drain` reads a node's
/// link before returning it, so each may be freed at once.
fn free_cached(node: NonNull<Node>) {
    // SAFETY: cached slots are leaked boxes nobody else references (a slot
    // in use is not in the cache), and each is drained exactly once.
    unsafe { drop(Box::from_raw(node.cast::<Slot>().as_ptr())) };
}

/// A free slot from this thread's cache, or `None` (the cache is at its
/// limit, or the thread is exiting).
pub(super) fn take_slot() -> Option<NonNull<Slot>> {
    SLOTS.try_with(SlotCache::take).ok().flatten()
}

/// Returns `slot` to the cache of the thread that made it — or frees it,
/// if that thread has exited.
///
/// # Safety
/// `slot` is a leaked `Box<Slot>` that nothing references any more.
pub(super) unsafe fn give_back_slot(slot: NonNull<Slot>) {
    let node = slot.cast::<Node>();
    // Our own reference: once the push below publishes the slot, its owner
    // may free it — and with it the slot's reference to `home` — while
    // `push` still reads the mailbox.
    // SAFETY: the slot is ours (contract) and initialised.
    let home = Arc::clone(unsafe { &(*slot.as_ptr()).home });
    // SAFETY: the slot is ours (contract); its first bytes become the free
    // list's node, which the push hands to the owner; on refusal it is
    // still ours to free.
    unsafe {
        node.write(Node::new());
        if home.returned.push(node).is_err() {
            drop(Box::from_raw(slot.as_ptr()));
        }
    }
}
