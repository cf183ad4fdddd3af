//! Reserving stacks: one anonymous mapping per chunk of same-sized slots,
//! a guard page under each slot — `MADV_GUARD_INSTALL` where the kernel
//! has it (Linux ≥ 6.13), `mprotect` otherwise — and the chunk published
//! in the overflow handler's table; and giving a chunk back.

use std::io;
use std::ptr;

use super::chunks;
use crate::sys::{page_size, syscall};

/// `madvise` advice installing a guard region (Linux ≥ 6.13); not in libc yet.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// How fiber stacks' guard pages are made (see [`StackBudget`](crate::rt::StackBudget)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuardKind {
    /// `madvise(MADV_GUARD_INSTALL)` (Linux ≥ 6.13): no extra mappings.
    Madvise,
    /// `mprotect(PROT_NONE)`: two mappings per stack, counted against
    /// `vm.max_map_count` on Linux.
    Mprotect,
}

/// One anonymous reservation holding `slots` stacks of one size.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) stride: usize,
    pub(super) slots: usize,
    /// Slots below this index have been handed out at least once.
    pub(super) fresh: usize,
    /// Index in the overflow handler's table.
    pub(super) table_index: usize,
    /// The pool-wide number of the chunk's first slot.
    #[cfg(any(feature = "tracy-fibers", test))]
    pub(super) first_index: usize,
    /// A fiber on this chunk never finished; the memory must stay mapped.
    pub(super) leaked: bool,
}

/// The guard mode this process's pools use: `LOOM_STACK_GUARD`, else the
/// best the kernel offers.
pub(crate) fn detect_guard_kind() -> GuardKind {
    match std::env::var("LOOM_STACK_GUARD").as_deref() {
        Ok("mprotect") => return GuardKind::Mprotect,
        Ok("madvise") | Err(_) => {}
        Ok(other) => {
            log::warn!("ignoring LOOM_STACK_GUARD={other:?}; expected madvise or mprotect")
        }
    }
    if madvise_guards_supported() {
        GuardKind::Madvise
    } else {
        // Once per process, like the backend fallback: a program may build
        // many runtimes.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            log::info!(
                "MADV_GUARD_INSTALL unsupported (Linux < 6.13); fiber stack guards use mprotect"
            );
        });
        GuardKind::Mprotect
    }
}

#[cfg(target_os = "linux")]
fn madvise_guards_supported() -> bool {
    use std::sync::OnceLock;
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let page = page_size();
        let Ok(probe) = map_anonymous(page) else {
            return false;
        };
        let ok = syscall!(madvise(probe.cast(), page, MADV_GUARD_INSTALL)).is_ok();
        // SAFETY: `probe` is the mapping of `page` bytes made just above.
        unsafe { libc::munmap(probe.cast(), page) };
        ok
    })
}

#[cfg(not(target_os = "linux"))]
fn madvise_guards_supported() -> bool {
    false
}

fn map_anonymous(len: usize) -> io::Result<*mut u8> {
    #[cfg(target_os = "linux")]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_NORESERVE;
    // SAFETY: an anonymous mapping at a kernel-chosen address touches no
    // existing memory.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(addr.cast())
    }
}

pub(super) fn reserve_chunk(
    stack_bytes: usize,
    slots: usize,
    guard_kind: GuardKind,
) -> io::Result<Chunk> {
    let page = page_size();
    let stride = stack_bytes + page;
    let len = stride.checked_mul(slots).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            "fiber stack reservation size overflows",
        )
    })?;
    let start = map_anonymous(len).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reserve {slots} fiber stacks of {} KiB ({len} bytes): {e}",
                stack_bytes / 1024
            ),
        )
    })? as usize;
    let mut chunk = Chunk {
        start,
        len,
        stride,
        slots,
        fresh: 0,
        table_index: usize::MAX,
        #[cfg(any(feature = "tracy-fibers", test))]
        first_index: 0,
        leaked: false,
    };
    if let Err(e) = install_guards(&chunk, guard_kind) {
        release_chunk(&chunk);
        return Err(e);
    }
    match chunks::register_chunk(start, len, stride, page) {
        Ok(index) => chunk.table_index = index,
        Err(e) => {
            release_chunk(&chunk);
            return Err(e);
        }
    }
    Ok(chunk)
}

fn install_guards(chunk: &Chunk, guard_kind: GuardKind) -> io::Result<()> {
    let page = page_size();
    #[cfg(target_os = "linux")]
    {
        // Best effort: without it a touched stack may be backed by a huge page.
        let _ = syscall!(madvise(
            chunk.start as *mut libc::c_void,
            chunk.len,
            libc::MADV_NOHUGEPAGE
        ));
    }
    for slot in 0..chunk.slots {
        let guard = (chunk.start + slot * chunk.stride) as *mut libc::c_void;
        let result = match guard_kind {
            #[cfg(target_os = "linux")]
            GuardKind::Madvise => syscall!(madvise(guard, page, MADV_GUARD_INSTALL)),
            #[cfg(not(target_os = "linux"))]
            GuardKind::Madvise => unreachable!("MADV_GUARD_INSTALL is Linux-only"),
            GuardKind::Mprotect => syscall!(mprotect(guard, page, libc::PROT_NONE)),
        };
        if let Err(e) = result {
            return Err(guard_error(e, guard_kind, chunk.slots));
        }
    }
    Ok(())
}

fn guard_error(e: io::Error, guard_kind: GuardKind, slots: usize) -> io::Error {
    if guard_kind == GuardKind::Mprotect && e.raw_os_error() == Some(libc::ENOMEM) {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "cannot install guard pages for {slots} fiber stacks: the process ran out of \
                 memory mappings (each mprotect-guarded stack costs two). Raise the limit with \
                 `sysctl -w vm.max_map_count=<more>`, lower `fibers`/`max_fibers`, or run on \
                 Linux >= 6.13 where MADV_GUARD_INSTALL needs no extra mappings ({e})"
            ),
        )
    } else {
        io::Error::new(
            e.kind(),
            format!("cannot install fiber stack guard pages ({guard_kind:?}): {e}"),
        )
    }
}

/// Whether growing failed because the process may map no more: `ENOMEM`
/// from `mmap` or a guard's `mprotect` (`vm.max_map_count`), or the
/// overflow handler's chunk table is full. The pool then stops growing.
pub(super) fn is_out_of_mappings(e: &io::Error, guard_kind: GuardKind) -> bool {
    guard_kind == GuardKind::Mprotect && e.kind() == io::ErrorKind::OutOfMemory
}

pub(super) fn release_chunk(chunk: &Chunk) {
    if chunk.table_index != usize::MAX {
        chunks::unregister_chunk(chunk.table_index);
    }
    // SAFETY: the chunk is a mapping of `len` bytes made by `map_anonymous`
    // and, per the callers, no fiber uses any of its slots.
    unsafe { libc::munmap(chunk.start as *mut libc::c_void, chunk.len) };
}
