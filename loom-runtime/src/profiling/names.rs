//! Fiber-track names for `tracy-fibers`: one stable, NUL-terminated string
//! per fiber stack slot, alive as long as the process.
//!
//! Tracy keys a fiber track by the *address* of its name and reads the
//! string whenever the viewer asks, so a name must never move or be freed.
//! Names belong to stack slots, not fibers — a slot hosts one fiber at a
//! time — so they are made when a pool reserves stacks, never when a fiber
//! is spawned. They are leaked `CString`s in a process-wide table of *sets*,
//! one set per loop of every runtime alive at once: a pool leases a set for
//! its loop index and gives it back when dropped, so later runtimes reuse
//! the same names and memory stays bounded by the most loops (and slots)
//! ever alive together. Runtimes running side by side get distinct sets
//! (`loom-loop-0/fiber-3`, `loom-loop-0#1/fiber-3`): one name entered on
//! two threads at once would confuse Tracy.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The names of one loop's slots.
struct NameSet {
    loop_index: usize,
    /// Sets of the same loop index made before this one.
    ordinal: usize,
    leased: bool,
    names: Vec<&'static CStr>,
}

static SETS: Mutex<Vec<NameSet>> = Mutex::new(Vec::new());

fn sets() -> MutexGuard<'static, Vec<NameSet>> {
    SETS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stack pool's lease on a set of slot names, with a local copy of the
/// pointers so looking one up at spawn takes no lock.
#[derive(Debug)]
pub(crate) struct SlotNames {
    set: usize,
    names: RefCell<Vec<*const c_char>>,
}

impl SlotNames {
    /// Leases a set of names for the slots of loop `loop_index`'s pool.
    pub(crate) fn lease(loop_index: usize) -> SlotNames {
        let mut sets = sets();
        let set = match sets
            .iter()
            .position(|set| set.loop_index == loop_index && !set.leased)
        {
            Some(free) => free,
            None => {
                let ordinal = sets
                    .iter()
                    .filter(|set| set.loop_index == loop_index)
                    .count();
                sets.push(NameSet {
                    loop_index,
                    ordinal,
                    leased: false,
                    names: Vec::new(),
                });
                sets.len() - 1
            }
        };
        sets[set].leased = true;
        SlotNames {
            set,
            names: RefCell::new(Vec::new()),
        }
    }

    /// Makes sure slots `0..slots` have names; called when the pool has
    /// reserved stacks up to that many.
    pub(crate) fn reserve(&self, slots: usize) {
        let mut local = self.names.borrow_mut();
        if local.len() >= slots {
            return;
        }
        let mut sets = sets();
        let set = &mut sets[self.set];
        while set.names.len() < slots {
            let name = match set.ordinal {
                0 => format!("loom-loop-{}/fiber-{}", set.loop_index, set.names.len()),
                k => format!("loom-loop-{}#{k}/fiber-{}", set.loop_index, set.names.len()),
            };
            let name = CString::new(name).expect("a formatted name has no NUL");
            // Leaked: Tracy may read it until the process exits.
            set.names.push(Box::leak(name.into_boxed_c_str()));
        }
        let have = local.len();
        local.extend(set.names[have..slots].iter().map(|name| name.as_ptr()));
    }

    /// The name of slot `index`, which [`SlotNames::reserve`] covered.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> *const c_char {
        self.names.borrow()[index as usize]
    }
}

impl Drop for SlotNames {
    fn drop(&mut self) {
        sets()[self.set].leased = false;
    }
}
