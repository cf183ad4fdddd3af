//! loom's demo: 100 000 fibers, each sleeping on its own 16 KiB stack, on one
//! event loop. Prints how fast they spawn, how much resident memory an idle
//! fiber costs, and how many heap allocations spawning them made.
//!
//! Run with `cargo run --release --example demo`.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts heap allocations, so the demo can show that spawning makes none.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const FIBERS: usize = 100_000;
const STACK_BYTES: usize = 16 * 1024;

/// Resident set size of this process, from /proc/self/status (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() -> std::io::Result<()> {
    let rt = loom::Runtime::builder()
        .fibers(FIBERS + 1) // + the main fiber
        .max_fibers(FIBERS + 1)
        .stack_size(STACK_BYTES)
        .build()?;
    println!(
        "loom demo: {FIBERS} fibers with {} KiB stacks on one loop",
        STACK_BYTES / 1024
    );
    println!("  reserved stacks    {:>10}", rt.reserved_fibers());

    rt.run(|| {
        let mut handles = Vec::with_capacity(FIBERS);
        let rss_before = resident_bytes();
        let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);

        let start = Instant::now();
        for _ in 0..FIBERS {
            handles.push(loom::spawn(|| loom::time::sleep(Duration::from_secs(3600))));
        }
        let spawned = start.elapsed();
        // Let every fiber run up to its sleep.
        loom::yield_now();
        let asleep = start.elapsed();

        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
        let rss_after = resident_bytes();
        println!(
            "  spawn rate         {:>10.2} M fibers/s ({:.1} ns per spawn; first use of each \
             stack, so mostly page faults)",
            FIBERS as f64 / spawned.as_secs_f64() / 1e6,
            spawned.as_nanos() as f64 / FIBERS as f64
        );
        println!("  all asleep after   {:>10.1} ms", asleep.as_secs_f64() * 1e3);
        match (rss_before, rss_after) {
            (Some(before), Some(after)) => println!(
                "  resident per fiber {:>10.2} KiB (idle, sleeping; {:.1} MiB in all)",
                after.saturating_sub(before) as f64 / FIBERS as f64 / 1024.0,
                after.saturating_sub(before) as f64 / (1024.0 * 1024.0)
            ),
            _ => println!("  resident per fiber        n/a (no /proc/self/status)"),
        }
        println!("  heap allocations   {allocations:>10} while spawning {FIBERS} fibers and putting them to sleep");

        // Cancelling makes each sleep return Interrupted, so every fiber
        // finishes and its stack goes back to the pool. (Returning from main
        // without this would cancel them the same way.)
        let shutdown = Instant::now();
        for handle in &handles {
            handle.cancel();
        }
        let interrupted = handles
            .into_iter()
            .map(|h| h.join().expect("a sleeper panicked"))
            .filter(|r| r.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::Interrupted))
            .count();
        println!(
            "  cancel + join      {:>10.1} ms ({interrupted} sleeps interrupted)",
            shutdown.elapsed().as_secs_f64() * 1e3
        );
    });
    Ok(())
}
