//! Micro-benchmarks: loom against may, tokio, raw corosensei and OS threads.
//!
//! Run with `cargo run --release -p loom-benches --bin micro [FILTER]`; only
//! benches whose name contains `FILTER` run. Each measurement prints one line
//! `bench=<name> impl=<impl> ns_per_op=<f> allocs_per_op=<f>` on stdout
//! (progress goes to stderr).
//!
//! * `yield_pingpong`: two fibers / coroutines / tasks that each yield in a
//!   loop, so control bounces between them through the scheduler. One op is
//!   one yield (one task handing over to the other); ns_per_op is total time
//!   divided by the yields of both. The `corosensei` row is the floor: a bare
//!   coroutine with no scheduler, where one op is one `resume` + `suspend`
//!   round trip, the same two stack switches a scheduler-mediated yield
//!   needs at minimum (task -> scheduler -> other task). The
//!   `corosensei-pair` row alternates two bare coroutines through an index
//!   the compiler cannot predict: what a scheduler pays before any queue.
//! * `spawn_join`: spawn a fiber / coroutine / task / thread with an empty
//!   body and wait for it, repeatedly. One op is one spawn + join.
//!
//! Comparability: every implementation does the same work per op and runs
//! on a single thread: loom's runtime runs the fibers on the calling thread,
//! tokio uses a `current_thread` runtime, and may is configured with one
//! worker (the driver loop itself runs inside a may coroutine on that worker,
//! so spawn/join/yield never cross threads). Runtime start-up is excluded:
//! each timed pass is preceded by a 10% warm-up pass inside the same runtime,
//! and each measurement reports the fastest of `REPS` timed passes, with the
//! allocation count (alloc + alloc_zeroed + realloc calls, all threads) from
//! that pass.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::hint::black_box;
use std::io::Write;

use corosensei::{Coroutine, CoroutineResult};
use loom_benches::{CountingAlloc, REPS, Sample, best_of, best_of_async, format_line, selected};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Total yields (by both fibers together) per timed pass of `yield_pingpong`.
/// Even, so each of the two fibers does exactly half.
const YIELD_OPS: u64 = 1_000_000;
/// Spawn + join pairs per timed pass of `spawn_join` (fiber/task impls).
const SPAWN_OPS: u64 = 200_000;
/// Spawn + join pairs per timed pass of `spawn_join` for OS threads.
const THREAD_OPS: u64 = 2_000;

struct Case {
    bench: &'static str,
    imp: &'static str,
    ops: u64,
    run: fn() -> Sample,
}

const CASES: &[Case] = &[
    Case {
        bench: "yield_pingpong",
        imp: "loom",
        ops: YIELD_OPS,
        run: loom_yield_pingpong,
    },
    Case {
        bench: "yield_pingpong",
        imp: "may",
        ops: YIELD_OPS,
        run: may_yield_pingpong,
    },
    Case {
        bench: "yield_pingpong",
        imp: "tokio",
        ops: YIELD_OPS,
        run: tokio_yield_pingpong,
    },
    Case {
        bench: "yield_pingpong",
        imp: "corosensei",
        ops: YIELD_OPS,
        run: corosensei_yield_pingpong,
    },
    Case {
        bench: "yield_pingpong",
        imp: "corosensei-pair",
        ops: YIELD_OPS,
        run: corosensei_pair_pingpong,
    },
    Case {
        bench: "spawn_join",
        imp: "loom",
        ops: SPAWN_OPS,
        run: loom_spawn_join,
    },
    Case {
        bench: "spawn_join",
        imp: "may",
        ops: SPAWN_OPS,
        run: may_spawn_join,
    },
    Case {
        bench: "spawn_join",
        imp: "tokio",
        ops: SPAWN_OPS,
        run: tokio_spawn_join,
    },
    Case {
        bench: "spawn_join",
        imp: "std-thread",
        ops: THREAD_OPS,
        run: std_thread_spawn_join,
    },
];

fn main() {
    let filter = std::env::args().nth(1);
    // One may worker thread, so may's coroutines are scheduled on a single
    // thread like loom's fibers and tokio's current_thread tasks. Must happen
    // before the first coroutine is spawned (may starts its scheduler lazily).
    may::config().set_workers(1);

    let mut stdout = std::io::stdout().lock();
    for case in CASES
        .iter()
        .filter(|c| selected(filter.as_deref(), c.bench))
    {
        eprintln!(
            "micro: bench={} impl={} ({} ops x {REPS} reps, best reported)",
            case.bench, case.imp, case.ops
        );
        let sample = (case.run)();
        writeln!(stdout, "{}", format_line(case.bench, case.imp, sample))
            .and_then(|()| stdout.flush())
            .expect("write to stdout");
    }
}

// ---------------------------------------------------------------- loom ----

fn loom_runtime() -> loom::Runtime {
    loom::Runtime::builder()
        .build()
        .expect("failed to build loom runtime")
}

fn loom_yield_pingpong() -> Sample {
    loom_runtime().run(|| {
        best_of(YIELD_OPS, |total| {
            let per_fiber = total / 2;
            let spin = move || {
                for _ in 0..black_box(per_fiber) {
                    loom::yield_now();
                }
            };
            let a = loom::spawn(spin);
            let b = loom::spawn(spin);
            a.join().expect("loom fiber panicked");
            b.join().expect("loom fiber panicked");
        })
    })
}

fn loom_spawn_join() -> Sample {
    loom_runtime().run(|| {
        best_of(SPAWN_OPS, |n| {
            for _ in 0..black_box(n) {
                loom::spawn(|| ()).join().expect("loom fiber panicked");
            }
        })
    })
}

// ----------------------------------------------------------------- may ----

fn may_yield_pingpong() -> Sample {
    let driver_body = || {
        best_of(YIELD_OPS, |total| {
            let per_fiber = total / 2;
            let spin = move || {
                for _ in 0..black_box(per_fiber) {
                    may::coroutine::yield_now();
                }
            };
            // SAFETY: `may::coroutine::spawn` is unsafe because coroutines can
            // migrate between worker threads (making thread-local access
            // unsound) and because overflowing the small (default 32 KiB)
            // coroutine stack is not caught. `spin` captures only a `u64`,
            // touches no thread-locals and needs almost no stack.
            let a = unsafe { may::coroutine::spawn(spin) };
            // SAFETY: as above.
            let b = unsafe { may::coroutine::spawn(spin) };
            a.join().expect("may coroutine panicked");
            b.join().expect("may coroutine panicked");
        })
    };
    // SAFETY: see above. The driver captures nothing, touches no
    // thread-locals (only atomics, `Instant` and may's own API) and uses a few
    // hundred bytes of stack.
    let driver = unsafe { may::coroutine::spawn(driver_body) };
    driver.join().expect("may driver coroutine panicked")
}

fn may_spawn_join() -> Sample {
    let driver_body = || {
        best_of(SPAWN_OPS, |n| {
            for _ in 0..black_box(n) {
                // SAFETY: see `may_yield_pingpong`; the empty closure captures
                // nothing, uses no thread-locals and no stack to speak of.
                // (This is exactly what `may::go!(|| ())` expands to.)
                let h = unsafe { may::coroutine::spawn(|| ()) };
                h.join().expect("may coroutine panicked");
            }
        })
    };
    // SAFETY: see `may_yield_pingpong`: the driver captures nothing, uses no
    // thread-locals and little stack.
    let driver = unsafe { may::coroutine::spawn(driver_body) };
    driver.join().expect("may driver coroutine panicked")
}

// --------------------------------------------------------------- tokio ----

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("failed to build tokio runtime")
}

fn tokio_yield_pingpong() -> Sample {
    tokio_runtime().block_on(best_of_async(YIELD_OPS, async |total| {
        let per_fiber = total / 2;
        let a = tokio::spawn(tokio_spin(per_fiber));
        let b = tokio::spawn(tokio_spin(per_fiber));
        a.await.expect("tokio task panicked");
        b.await.expect("tokio task panicked");
    }))
}

async fn tokio_spin(yields: u64) {
    for _ in 0..black_box(yields) {
        tokio::task::yield_now().await;
    }
}

fn tokio_spawn_join() -> Sample {
    tokio_runtime().block_on(best_of_async(SPAWN_OPS, async |n| {
        for _ in 0..black_box(n) {
            tokio::spawn(async {}).await.expect("tokio task panicked");
        }
    }))
}

// ---------------------------------------------------------- corosensei ----

/// One op = one `resume` + `suspend` round trip of a bare coroutine (two
/// stack switches, no scheduler, no queue): the floor for a yield.
fn corosensei_yield_pingpong() -> Sample {
    let mut co: Coroutine<bool, (), ()> = Coroutine::new(|yielder, mut keep_going: bool| {
        while keep_going {
            keep_going = yielder.suspend(());
        }
    });
    let sample = best_of(YIELD_OPS, |n| {
        for _ in 0..black_box(n) {
            black_box(co.resume(black_box(true)));
        }
    });
    // Let the body return normally instead of force-unwinding it on drop.
    assert!(matches!(co.resume(false), CoroutineResult::Return(())));
    sample
}

/// Two bare coroutines resumed alternately, the next one chosen by an index
/// the compiler cannot see through: the least any scheduler must do to hand
/// the CPU between two fibers, without a run queue. Reference only; the
/// issue's floor is the single-coroutine row above.
fn corosensei_pair_pingpong() -> Sample {
    let body = |yielder: &corosensei::Yielder<bool, ()>, mut keep_going: bool| {
        while keep_going {
            keep_going = yielder.suspend(());
        }
    };
    let mut pair: [Coroutine<bool, (), ()>; 2] = [Coroutine::new(body), Coroutine::new(body)];
    let sample = best_of(YIELD_OPS, |n| {
        let mut next = 0usize;
        for _ in 0..black_box(n) {
            black_box(pair[next].resume(black_box(true)));
            next = black_box(next ^ 1);
        }
    });
    for co in &mut pair {
        assert!(matches!(co.resume(false), CoroutineResult::Return(())));
    }
    sample
}

// ---------------------------------------------------------- std-thread ----

fn std_thread_spawn_join() -> Sample {
    best_of(THREAD_OPS, |n| {
        for _ in 0..black_box(n) {
            std::thread::spawn(|| ())
                .join()
                .expect("std thread panicked");
        }
    })
}
