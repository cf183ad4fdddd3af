//! Guards the fix applied to the vendored loom (see README.md): without it
//! loom lets a store squeeze in between the read and the write of a
//! read-modify-write, and reports lost wake-ups in the mailbox that cannot
//! happen. These are the reproductions from tokio-rs/loom#254 and #389.

#![cfg(not(miri))]

use loom_model::sync::Arc;
use loom_model::sync::atomic::{AtomicBool, Ordering::Relaxed};
use loom_model::thread;

/// A swap that read `false` precedes the concurrent `store(true)`, so the
/// final value is `true` — or the swap read `true`.
#[test]
fn a_store_does_not_come_between_a_swaps_read_and_write() {
    loom_model::model(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let swapper = thread::spawn({
            let flag = Arc::clone(&flag);
            move || flag.swap(false, Relaxed)
        });
        flag.store(true, Relaxed);
        let swapped = swapper.join().unwrap();
        assert!(swapped || flag.load(Relaxed));
    });
}

/// The same from the other side: the swap runs on the main thread.
#[test]
fn a_swap_and_a_concurrent_store_are_ordered() {
    loom_model::model(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let storer = thread::spawn({
            let flag = Arc::clone(&flag);
            move || flag.store(true, Relaxed)
        });
        let swapped = flag.swap(false, Relaxed);
        storer.join().unwrap();
        assert_ne!(flag.load(Relaxed), swapped);
    });
}
