//! How many guard-paged fiber stacks this host lets the process map.
//!
//! A fiber stack's guard page is made one of two ways (see `pool.rs`):
//!
//! - `MADV_GUARD_INSTALL` (Linux ≥ 6.13) marks the page inside the chunk's
//!   one mapping: a stack costs no mapping of its own, and only address
//!   space and memory bound the pool.
//! - `mprotect(PROT_NONE)` (Linux < 6.13, other Unixes, or
//!   `LOOM_STACK_GUARD=mprotect`) splits the chunk's mapping around every
//!   guard page: each stack costs two mappings. Linux caps a process's
//!   mappings at `vm.max_map_count` (65 530 by default), and past it both
//!   `mprotect` and `mmap` fail with `ENOMEM` — so at the default about
//!   31 700 guarded stacks fit in one process, whatever the memory.
//!
//! [`StackBudget`] is that count, read from the kernel when asked: the
//! limit less the mappings the process already has, less
//! [`RESERVED_MAPPINGS`] kept for everything else it will map later (thread
//! stacks, allocator arenas, io_uring rings, libraries), halved. Runtimes
//! read it in `Builder::build` and split it between their loops; a pool
//! never grows past its share, so spawning at the budget waits for a free
//! stack instead of failing.

use std::fmt;
use std::io::{self, Read};

use super::reserve::{GuardKind, detect_guard_kind};

/// Memory mappings a budget leaves for the rest of the program: each
/// thread costs two or three (stack, guard, an allocator arena), each
/// io_uring three, each shared library four or five. 2048 covers hundreds
/// of threads; a program that maps more raises `vm.max_map_count` anyway.
pub const RESERVED_MAPPINGS: usize = 2048;

/// Mappings one `mprotect`-guarded stack costs: its guard page and its
/// usable pages, each a mapping of its own.
const MAPPINGS_PER_GUARDED_STACK: usize = 2;

/// What this host allows for guard-paged fiber stacks, read when it was
/// made (see [`stack_budget`]).
///
/// | host | [`guard`](Self::guard) | [`stacks`](Self::stacks) |
/// |---|---|---|
/// | Linux ≥ 6.13 | `Madvise` | `None`: no mapping per stack |
/// | Linux < 6.13, or `LOOM_STACK_GUARD=mprotect` | `Mprotect` | about `(vm.max_map_count − mappings in use − 2048) / 2`: 31 700 at the default 65 530 |
/// | macOS, BSD | `Mprotect` | `None`: no per-process mapping limit to read |
///
/// # Examples
///
/// ```
/// let budget = loom::rt::stack_budget();
/// match budget.stacks() {
///     Some(n) => println!("{n} more guarded stacks fit ({budget})"),
///     None => println!("stacks are bounded by memory only ({budget})"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackBudget {
    guard: GuardKind,
    max_map_count: Option<usize>,
    mappings: Option<usize>,
    stacks: Option<usize>,
}

/// Reads the host's stack budget now: the guard mode stacks get, and with
/// `mprotect` guards on Linux, `vm.max_map_count` and the mappings the
/// process holds (`/proc/self/maps`). Cheap enough for start-up, not for a
/// hot path: it reads one line per mapping.
pub fn stack_budget() -> StackBudget {
    StackBudget::read(detect_guard_kind())
}

impl StackBudget {
    /// The budget for stacks guarded the `guard` way.
    pub(crate) fn read(guard: GuardKind) -> StackBudget {
        if guard == GuardKind::Madvise || !cfg!(target_os = "linux") {
            return StackBudget {
                guard,
                max_map_count: None,
                mappings: None,
                stacks: None,
            };
        }
        let max_map_count = read_max_map_count();
        let mappings = count_mappings();
        let stacks = match (&max_map_count, &mappings) {
            (Ok(limit), Ok(used)) => {
                Some(limit.saturating_sub(used + RESERVED_MAPPINGS) / MAPPINGS_PER_GUARDED_STACK)
            }
            (Err(e), _) | (_, Err(e)) => {
                // Without /proc the runtime cannot predict the limit; pools
                // still stop growing when the kernel refuses a mapping.
                log::debug!("loom: no stack budget: cannot read the mapping limit or count ({e})");
                None
            }
        };
        StackBudget {
            guard,
            max_map_count: max_map_count.ok(),
            mappings: mappings.ok(),
            stacks,
        }
    }

    /// How guard pages are made on this host.
    pub fn guard(&self) -> GuardKind {
        self.guard
    }

    /// `vm.max_map_count`, where it bounds the stacks (Linux, `mprotect`
    /// guards).
    pub fn max_map_count(&self) -> Option<usize> {
        self.max_map_count
    }

    /// The memory mappings the process held when the budget was read.
    pub fn mappings_in_use(&self) -> Option<usize> {
        self.mappings
    }

    /// How many more guard-paged stacks fit in this process, over every
    /// runtime and loop in it; `None` when no mapping limit bounds them.
    pub fn stacks(&self) -> Option<usize> {
        self.stacks
    }

    /// The `vm.max_map_count` under which `stacks` more guarded stacks
    /// would fit, where that limit is what bounds them (else `None`).
    pub fn max_map_count_for(&self, stacks: usize) -> Option<usize> {
        self.max_map_count?;
        let used = self.mappings?;
        Some(used + RESERVED_MAPPINGS + stacks.saturating_mul(MAPPINGS_PER_GUARDED_STACK))
    }

    /// `stacks` split evenly between `loops` loops, each loop's share.
    pub(crate) fn per_loop(&self, loops: usize) -> Option<usize> {
        self.stacks.map(|stacks| stacks / loops.max(1))
    }
}

impl fmt::Display for StackBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.guard, self.max_map_count, self.mappings, self.stacks) {
            (GuardKind::Madvise, ..) => {
                f.write_str("MADV_GUARD_INSTALL guards: no mapping per stack, no stack budget")
            }
            (GuardKind::Mprotect, Some(limit), Some(used), Some(stacks)) => write!(
                f,
                "mprotect guards (two mappings per stack): vm.max_map_count {limit}, {used} \
                 mappings in use, {RESERVED_MAPPINGS} kept back: {stacks} more stacks fit"
            ),
            (GuardKind::Mprotect, ..) => {
                f.write_str("mprotect guards, no mapping limit known: no stack budget")
            }
        }
    }
}

fn read_max_map_count() -> io::Result<usize> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count")?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("vm.max_map_count is {text:?}: {e}"),
        )
    })
}

/// The process's mappings: one line of `/proc/self/maps` each.
fn count_mappings() -> io::Result<usize> {
    let mut maps = std::fs::File::open("/proc/self/maps")?;
    // On the heap: `build` may run on a fiber's small stack.
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0;
    loop {
        match maps.read(&mut buf) {
            Ok(0) => return Ok(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn madvise_guards_have_no_budget() {
        let budget = StackBudget::read(GuardKind::Madvise);
        assert_eq!(budget.stacks(), None);
        assert_eq!(budget.max_map_count_for(100_000), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn mprotect_budget_follows_the_mapping_limit() {
        let budget = StackBudget::read(GuardKind::Mprotect);
        let limit = budget.max_map_count().expect("Linux has vm.max_map_count");
        let used = budget.mappings_in_use().expect("Linux has /proc/self/maps");
        assert!(used > 0);
        let stacks = budget.stacks().unwrap();
        assert_eq!(stacks, (limit - used - RESERVED_MAPPINGS) / 2);
        // The limit that fits exactly the budget is (about) the one in force.
        let needed = budget.max_map_count_for(stacks).unwrap();
        assert!(
            needed <= limit && limit - needed <= 1,
            "{needed} vs {limit}"
        );
        assert_eq!(budget.per_loop(2), Some(stacks / 2));
        assert!(budget.to_string().contains("vm.max_map_count"));
    }
}
