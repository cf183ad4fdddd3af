//! Shared harness for the benchmark binaries.
//!
//! For the `echo` binary (TCP echo servers side by side), see [`echo`]; for
//! the `http` binary (HTTP servers side by side), [`http`]; what the two
//! share (server processes, pinning, CPU time, rounds, medians, tables)
//! is in [`harness`]. For the `micro` binary:
//!
//! * [`CountingAlloc`] is a global-allocator wrapper around
//!   [`std::alloc::System`] that counts allocation calls; the binary installs
//!   it with `#[global_allocator]`.
//! * [`Timer`] samples the wall clock and the allocation counter around one
//!   timed section and turns the deltas into a per-operation [`Sample`].
//! * [`best_of`] / [`best_of_async`] run a warm-up pass followed by a timed
//!   pass, [`REPS`] times, and keep the fastest timed pass.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod echo;
pub mod harness;
pub mod http;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Number of allocation calls (`alloc`, `alloc_zeroed`, `realloc`) made
/// through [`CountingAlloc`] since start-up, on all threads.
static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// A [`GlobalAlloc`] that forwards to [`System`] and counts every
/// `alloc`, `alloc_zeroed` and `realloc` call (frees are not counted).
///
/// The counter is process-wide, so allocations made on helper threads (e.g.
/// may's worker thread) are included.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: every method forwards its arguments unchanged to `System`, which is
// a correct `GlobalAlloc`; the only extra work is a relaxed atomic increment,
// which neither allocates nor touches the memory being managed.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero
        // size layout); it is forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`; the caller's contract is forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator, i.e. by `System`, with
        // this `layout` (caller's contract), so `System` may free it.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr`/`layout` come from `System` via this allocator and the
        // caller guarantees a valid non-zero `new_size`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

thread_local! {
    /// Allocation calls made on this thread through [`ThreadCountingAlloc`].
    /// A `const` initialiser and no destructor: touching it from inside the
    /// allocator never allocates or registers anything.
    static THREAD_ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// [`CountingAlloc`] that also counts per thread: every allocation call
/// adds to the process-wide counter ([`allocs`]) and to the calling
/// thread's own ([`thread_allocs`]). A separate type so that the `micro`
/// bench's allocator stays as cheap as it was.
///
/// The `http` bench's server process installs it and reports the process's
/// allocations less those of the thread that answers the harness's
/// queries, i.e. exactly what the server's own threads allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCountingAlloc;

/// Counts one allocation call on the process-wide and the thread's counter.
fn count_thread_alloc() {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: a thread past its TLS teardown still allocates (rarely);
    // such calls are counted process-wide only.
    let _ = THREAD_ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: as for `CountingAlloc`: every method forwards unchanged to
// `System`; the extra work (an atomic add and a thread-local `Cell` update
// with a const initialiser and no destructor) neither allocates nor touches
// the memory being managed.
unsafe impl GlobalAlloc for ThreadCountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_thread_alloc();
        // SAFETY: the caller's `GlobalAlloc::alloc` contract is forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_thread_alloc();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this `layout` (caller's
        // contract), so `System` may free it.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_thread_alloc();
        // SAFETY: the caller's `GlobalAlloc::realloc` contract is forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocation calls the calling thread made through [`ThreadCountingAlloc`]
/// (0 under any other allocator).
pub fn thread_allocs() -> u64 {
    THREAD_ALLOCS.with(std::cell::Cell::get)
}

/// Current value of the process-wide allocation counter.
pub fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Timed repetitions per measurement; the fastest one is reported.
pub const REPS: usize = 5;

/// Size of the warm-up pass that precedes every timed pass (10% of `ops`).
pub fn warmup(ops: u64) -> u64 {
    (ops / 10).max(1)
}

/// Result of one timed pass, normalised per operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Wall-clock nanoseconds per operation.
    pub ns_per_op: f64,
    /// Allocation calls per operation (see [`CountingAlloc`]).
    pub allocs_per_op: f64,
}

/// Wall clock plus allocation counter, sampled at the start of a timed section.
#[derive(Debug)]
pub struct Timer {
    start: Instant,
    allocs: u64,
}

impl Timer {
    /// Starts a timed section.
    pub fn start() -> Self {
        let allocs = allocs();
        Timer {
            start: Instant::now(),
            allocs,
        }
    }

    /// Ends the timed section, which performed `ops` operations.
    pub fn stop(self, ops: u64) -> Sample {
        let elapsed = self.start.elapsed();
        let allocs = allocs() - self.allocs;
        Sample {
            ns_per_op: elapsed.as_nanos() as f64 / ops as f64,
            allocs_per_op: allocs as f64 / ops as f64,
        }
    }
}

/// Keeps the sample with the lowest `ns_per_op`.
#[derive(Debug, Default)]
pub struct Best(Option<Sample>);

impl Best {
    /// Records one sample.
    pub fn push(&mut self, sample: Sample) {
        match self.0 {
            Some(best) if best.ns_per_op <= sample.ns_per_op => {}
            _ => self.0 = Some(sample),
        }
    }

    /// The fastest sample recorded so far.
    ///
    /// # Panics
    ///
    /// If no sample was pushed.
    pub fn get(&self) -> Sample {
        self.0.expect("no samples recorded")
    }
}

/// Runs `body(warmup(ops))` untimed and then `body(ops)` timed, [`REPS`]
/// times, and returns the fastest timed pass. `body(n)` must perform exactly
/// `n` operations.
pub fn best_of(ops: u64, mut body: impl FnMut(u64)) -> Sample {
    let mut best = Best::default();
    for _ in 0..REPS {
        body(warmup(ops));
        let timer = Timer::start();
        body(ops);
        best.push(timer.stop(ops));
    }
    best.get()
}

/// [`best_of`] for async bodies (the tokio implementations).
pub async fn best_of_async(ops: u64, mut body: impl AsyncFnMut(u64)) -> Sample {
    let mut best = Best::default();
    for _ in 0..REPS {
        body(warmup(ops)).await;
        let timer = Timer::start();
        body(ops).await;
        best.push(timer.stop(ops));
    }
    best.get()
}

/// Formats one result line: the only thing the binary writes to stdout.
pub fn format_line(bench: &str, imp: &str, sample: Sample) -> String {
    format!(
        "bench={bench} impl={imp} ns_per_op={:.1} allocs_per_op={:.2}",
        sample.ns_per_op, sample.allocs_per_op
    )
}

/// Whether `bench` is selected by the optional substring `filter`.
pub fn selected(filter: Option<&str>, bench: &str) -> bool {
    filter.is_none_or(|f| bench.contains(f))
}
