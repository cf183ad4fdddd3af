//! The table of fiber stack reservations ("chunks") that the overflow
//! handler searches: a fixed array of atomics, so that the lookup is
//! async-signal-safe (no lock, no allocation). Pools publish a chunk here
//! before any of its slots is handed out and withdraw it before unmapping.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Maximum number of stack reservations alive at once, over all loops.
/// Pools grow by doubling, so this is never the binding limit in practice.
pub const MAX_CHUNKS: usize = 1024;

struct ChunkRecord {
    claimed: AtomicBool,
    /// Start of the reservation, or 0 while the record is not published.
    start: AtomicUsize,
    len: AtomicUsize,
    stride: AtomicUsize,
    guard_bytes: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: ChunkRecord = ChunkRecord {
    claimed: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    stride: AtomicUsize::new(0),
    guard_bytes: AtomicUsize::new(0),
};

static CHUNKS: [ChunkRecord; MAX_CHUNKS] = [EMPTY; MAX_CHUNKS];

/// Publishes a reservation of `len` bytes made of `stride`-byte slots, each
/// starting with `guard_bytes` of guard.
pub(crate) fn register_chunk(
    start: usize,
    len: usize,
    stride: usize,
    guard_bytes: usize,
) -> io::Result<usize> {
    for (index, record) in CHUNKS.iter().enumerate() {
        if record
            .claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            record.len.store(len, Ordering::Relaxed);
            record.stride.store(stride, Ordering::Relaxed);
            record.guard_bytes.store(guard_bytes, Ordering::Relaxed);
            // Publish last: the handler reads `start` with Acquire first.
            record.start.store(start, Ordering::Release);
            return Ok(index);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("too many fiber stack reservations alive at once (limit {MAX_CHUNKS})"),
    ))
}

pub(crate) fn unregister_chunk(index: usize) {
    let record = &CHUNKS[index];
    record.start.store(0, Ordering::Release);
    record.claimed.store(false, Ordering::Release);
}

/// If `addr` lies in the guard page of a slot, the slot's top address.
pub(crate) fn guard_slot_top(addr: usize) -> Option<usize> {
    for record in &CHUNKS {
        let start = record.start.load(Ordering::Acquire);
        if start == 0 || addr < start {
            continue;
        }
        let len = record.len.load(Ordering::Relaxed);
        let stride = record.stride.load(Ordering::Relaxed);
        let guard = record.guard_bytes.load(Ordering::Relaxed);
        if addr - start < len && (addr - start) % stride < guard {
            let slot = (addr - start) / stride;
            return Some(start + (slot + 1) * stride);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_lookup_maps_addresses_to_slots() {
        // A fake reservation far from anything real; only the table is used.
        let start = 0x7000_0000_0000usize;
        let index = register_chunk(start, 3 * 0x5000, 0x5000, 0x1000).unwrap();
        assert_eq!(guard_slot_top(start), Some(start + 0x5000));
        assert_eq!(guard_slot_top(start + 0x5000 + 0xfff), Some(start + 0xa000));
        assert_eq!(
            guard_slot_top(start + 0x1000),
            None,
            "the stack itself is not a guard"
        );
        assert_eq!(guard_slot_top(start + 3 * 0x5000), None, "past the end");
        unregister_chunk(index);
        assert_eq!(guard_slot_top(start), None);
    }
}
