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
//! * `channel_pingpong_local`: two fibers / coroutines / tasks on one thread
//!   bounce a `u64` through two channels (A -> B, B -> A). One op is one
//!   round trip (two sends, two receives, two hand-overs). tokio uses
//!   `tokio::sync::mpsc` with capacity 1, may `may::sync::mpsc` (unbounded,
//!   but a ping-pong never has more than one message in flight).
//! * `channel_pingpong_cross`: the same ping-pong with the two ends meant to
//!   run on two threads (two cores). `tokio` is a `multi_thread` runtime
//!   with 2 workers, both tasks spawned from outside the runtime (so they
//!   can start on different workers); `may` has 2 workers (pinned to CPUs 0 and
//!   1, may's default; in a child process, because may's worker count is
//!   fixed per process and the rest of this binary uses one), both
//!   coroutines spawned from outside; `tokio-2rt` is two `current_thread`
//!   runtimes, one end on each, on two threads pinned to CPUs 0 and 1;
//!   `crossbeam` is two plain OS threads pinned to CPUs 0 and 1 with
//!   `crossbeam_channel::bounded(1)` and blocking `recv`, the OS-thread
//!   floor. The work-stealing runtimes pull both ends onto one worker
//!   (tokio puts a task woken from a worker into that worker's LIFO slot,
//!   may into that worker's local queue), so their hops are mostly local
//!   hand-overs. After its timed passes each impl therefore runs one probe
//!   pass of `PROBE_OPS` round trips in which every message carries the
//!   sender's CPU (`sched_getcpu`) and prints on stderr how many hops
//!   landed on another CPU; read each row with that figure.
//! * `spawn_on_join`: spawn a task with an empty body and await its
//!   `JoinHandle`, repeatedly, from inside a task. `tokio` is a
//!   `multi_thread` runtime with 2 workers (the child normally runs on the
//!   spawner's worker: it goes to the LIFO slot); `tokio-2rt` spawns onto a
//!   second `current_thread` runtime on another thread (CPU 1; the spawner
//!   is on CPU 0), so each op crosses threads both ways. A probe pass
//!   prints on stderr how many children ran on another CPU than their
//!   parent.
//! * `zone`: the cost of a profiler zone (what `#[loom::profile]` puts at
//!   the top of a function). Inside a fiber, a tight loop calls a small
//!   `#[inline(never)]` function; one op is one call. `plain` is the
//!   function without a zone. The zoned function is `loom-off` in a
//!   default build, where a zone is a zero-sized value and compiles to
//!   nothing (so it should match `plain`), `loom-tracy` with `--features
//!   tracy` and `loom-tracy-fibers` with `--features tracy-fibers`, where
//!   each call begins and ends a Tracy zone (in replay mode with `tracy`,
//!   on the fiber's track with `tracy-fibers`). Each row runs in a child
//!   process of its own, so each starts the Tracy client afresh (it starts
//!   with a process's first runtime and lives until exit, see
//!   `loom_runtime::profiling`) and neither pays for the other's buffered
//!   events: with no viewer connected, Tracy keeps every event in memory,
//!   hence the modest op count. With `tracy`, `plain` too runs with the
//!   client (and its worker threads) up, idle.
//!
//! The channel and `spawn_on_join` lines end with
//! `ratio_vs_tokio=<f>` (and `channel_pingpong_cross` also with
//! `ratio_vs_crossbeam=<f>`): the base impl's `ns_per_op` divided by this
//! impl's, so above 1 means faster than the base, as with the echo
//! benchmark's `ratio_vs_tokio` (`NaN` when the base did not run, e.g.
//! filtered out). Each impl is one function plus one entry in `CASES`.
//!
//! Comparability: every implementation does the same work per op and, but
//! for the cross-thread benches above, runs on a single thread: loom's
//! runtime runs the fibers on the calling thread, tokio uses a
//! `current_thread` runtime, and may is configured with one worker (the
//! driver loop itself runs inside a may coroutine on that worker, so
//! spawn/join/yield never cross threads). Runtime start-up is excluded:
//! each timed pass is preceded by a 10% warm-up pass inside the same runtime,
//! and each measurement reports the fastest of `REPS` timed passes, with the
//! allocation count (alloc + alloc_zeroed + realloc calls, all threads) from
//! that pass.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write;
use std::process::{Command, Stdio};

use corosensei::{Coroutine, CoroutineResult};
use loom_benches::echo::sys::pin_current_thread;
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
/// Round trips per timed pass of `channel_pingpong_local`.
const LOCAL_TRIPS: u64 = 200_000;
/// Round trips per timed pass of `channel_pingpong_cross`.
const CROSS_TRIPS: u64 = 100_000;
/// Spawn + join pairs per timed pass of `spawn_on_join`.
const SPAWN_ON_OPS: u64 = 50_000;
/// Round trips / spawns per timed pass of the `tokio-2rt` rows, where every
/// hop wakes a parked thread on the other CPU (~20 µs in a VM).
const REMOTE_OPS: u64 = 5_000;
/// Round trips (or spawns) of the untimed pass of the cross-thread benches
/// that checks which CPUs the two sides ran on.
const PROBE_OPS: u64 = 2_000;
/// Calls per timed pass of `zone` (Tracy buffers two events per zoned call
/// while no viewer is connected: keep the whole run in the tens of MB).
const ZONE_OPS: u64 = 200_000;
/// The zoned `zone` row's impl name: whether zones are compiled in.
const ZONED_IMPL: &str = if cfg!(feature = "tracy-fibers") {
    "loom-tracy-fibers"
} else if cfg!(feature = "tracy") {
    "loom-tracy"
} else {
    "loom-off"
};
/// Capacity of each of tokio's two ping-pong channels.
const TOKIO_CHANNEL_CAP: usize = 1;

/// Benches whose lines end with ratios, and the impls they are relative to.
const RATIO_BASES: &[(&str, &[&str])] = &[
    ("channel_pingpong_local", &["tokio"]),
    ("channel_pingpong_cross", &["tokio", "crossbeam"]),
    ("spawn_on_join", &["tokio"]),
];

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
    Case {
        bench: "channel_pingpong_local",
        imp: "loom",
        ops: LOCAL_TRIPS,
        run: loom_pingpong_local,
    },
    Case {
        bench: "channel_pingpong_local",
        imp: "may",
        ops: LOCAL_TRIPS,
        run: may_pingpong_local,
    },
    Case {
        bench: "channel_pingpong_local",
        imp: "tokio",
        ops: LOCAL_TRIPS,
        run: tokio_pingpong_local,
    },
    Case {
        bench: "channel_pingpong_cross",
        imp: "loom",
        ops: CROSS_TRIPS,
        run: loom_pingpong_cross,
    },
    Case {
        bench: "channel_pingpong_cross",
        imp: "may",
        ops: CROSS_TRIPS,
        run: may_pingpong_cross,
    },
    Case {
        bench: "channel_pingpong_cross",
        imp: "tokio",
        ops: CROSS_TRIPS,
        run: tokio_pingpong_cross,
    },
    Case {
        bench: "channel_pingpong_cross",
        imp: "tokio-2rt",
        ops: REMOTE_OPS,
        run: tokio_2rt_pingpong_cross,
    },
    Case {
        bench: "channel_pingpong_cross",
        imp: "crossbeam",
        ops: CROSS_TRIPS,
        run: crossbeam_pingpong_cross,
    },
    Case {
        bench: "spawn_on_join",
        imp: "loom",
        ops: SPAWN_ON_OPS,
        run: loom_spawn_on_join,
    },
    Case {
        bench: "spawn_on_join",
        imp: "tokio",
        ops: SPAWN_ON_OPS,
        run: tokio_spawn_on_join,
    },
    Case {
        bench: "spawn_on_join",
        imp: "tokio-2rt",
        ops: REMOTE_OPS,
        run: tokio_2rt_spawn_on_join,
    },
    Case {
        bench: "zone",
        imp: "plain",
        ops: ZONE_OPS,
        run: zone_plain,
    },
    Case {
        bench: "zone",
        imp: ZONED_IMPL,
        ops: ZONE_OPS,
        run: zone_zoned,
    },
];

/// A case that runs in a child process, `micro --child <bench> <impl>`,
/// because it needs may with more than one worker (may's worker count is
/// fixed for the life of a process, and every other may case here uses
/// one), or a fresh Tracy client (`zone`). The parent's `Case` calls
/// [`in_child`].
struct ChildCase {
    bench: &'static str,
    imp: &'static str,
    may_workers: usize,
    run: fn() -> Sample,
}

const CHILD_CASES: &[ChildCase] = &[
    ChildCase {
        bench: "channel_pingpong_cross",
        imp: "may",
        may_workers: 2,
        run: may_pingpong_cross_here,
    },
    ChildCase {
        bench: "zone",
        imp: "plain",
        may_workers: 1,
        run: zone_plain_here,
    },
    ChildCase {
        bench: "zone",
        imp: ZONED_IMPL,
        may_workers: 1,
        run: zone_zoned_here,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child_main(&args[1..]);
        return;
    }
    let filter = args.first().cloned();
    // One may worker thread, so may's coroutines are scheduled on a single
    // thread like loom's fibers and tokio's current_thread tasks. Must happen
    // before the first coroutine is spawned (may starts its scheduler lazily).
    may::config().set_workers(1);

    let mut benches: Vec<&str> = Vec::new();
    for case in CASES {
        if selected(filter.as_deref(), case.bench) && !benches.contains(&case.bench) {
            benches.push(case.bench);
        }
    }
    let mut stdout = std::io::stdout().lock();
    for bench in benches {
        let bases = ratio_bases(bench);
        // Lines with ratios wait until every impl of the bench has run.
        let mut results: Vec<(&str, Sample)> = Vec::new();
        for case in CASES.iter().filter(|c| c.bench == bench) {
            eprintln!(
                "micro: bench={} impl={} ({} ops x {REPS} reps, best reported)",
                case.bench, case.imp, case.ops
            );
            let sample = (case.run)();
            if bases.is_empty() {
                writeln!(stdout, "{}", format_line(case.bench, case.imp, sample))
                    .and_then(|()| stdout.flush())
                    .expect("write to stdout");
            } else {
                results.push((case.imp, sample));
            }
        }
        for &(imp, sample) in &results {
            writeln!(
                stdout,
                "{}",
                ratio_line(bench, imp, sample, bases, &results)
            )
            .and_then(|()| stdout.flush())
            .expect("write to stdout");
        }
    }
}

/// The impls `bench`'s ratios are relative to (none for most benches).
fn ratio_bases(bench: &str) -> &'static [&'static str] {
    RATIO_BASES
        .iter()
        .find(|(b, _)| *b == bench)
        .map_or(&[], |(_, bases)| bases)
}

/// [`format_line`] plus ` ratio_vs_<base>=<base ns_per_op / ns_per_op>` for
/// every base (`NaN` when the base is not among `results`).
fn ratio_line(
    bench: &str,
    imp: &str,
    sample: Sample,
    bases: &[&str],
    results: &[(&str, Sample)],
) -> String {
    let mut line = format_line(bench, imp, sample);
    for base in bases {
        let base_ns = results
            .iter()
            .find(|(i, _)| i == base)
            .map_or(f64::NAN, |(_, s)| s.ns_per_op);
        write!(line, " ratio_vs_{base}={:.3}", base_ns / sample.ns_per_op)
            .expect("write to a String");
    }
    line
}

// ------------------------------------------------------- child process ----

/// `micro --child <bench> <impl>`: configure may as the [`ChildCase`] says,
/// run it and print its sample on stdout for [`in_child`].
fn child_main(args: &[String]) {
    let [bench, imp] = args else {
        panic!("usage: micro --child <bench> <impl>");
    };
    let case = CHILD_CASES
        .iter()
        .find(|c| c.bench == bench && c.imp == imp)
        .unwrap_or_else(|| panic!("no child case bench={bench} impl={imp}"));
    may::config().set_workers(case.may_workers);
    let sample = (case.run)();
    println!(
        "ns_per_op={:?} allocs_per_op={:?}",
        sample.ns_per_op, sample.allocs_per_op
    );
}

/// Runs the [`ChildCase`] `bench`/`imp` in a child process (this binary
/// with `--child`) and returns its sample. The child's stderr is ours.
fn in_child(bench: &str, imp: &str) -> Sample {
    let exe = std::env::current_exe().expect("path of the micro binary");
    let out = Command::new(exe)
        .args(["--child", bench, imp])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("failed to run the micro child process");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "micro child bench={bench} impl={imp} failed ({}): {text}",
        out.status
    );
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("micro child: no {name} in {text:?}"))
    };
    Sample {
        ns_per_op: field("ns_per_op"),
        allocs_per_op: field("allocs_per_op"),
    }
}

// ------------------------------------------------ cross-thread probing ----

/// The CPU the calling thread is running on (`u64::MAX` if unknown).
fn current_cpu() -> u64 {
    // SAFETY: `sched_getcpu` takes no arguments and only reports which CPU
    // the calling thread is on.
    let cpu = unsafe { libc::sched_getcpu() };
    u64::try_from(cpu).unwrap_or(u64::MAX)
}

/// What a ping-pong end sends on: `v`, or in a probe pass its own CPU.
#[inline(always)]
fn outgoing<const PROBE: bool>(v: u64) -> u64 {
    if PROBE { current_cpu() } else { v }
}

/// Takes delivery of `v`; in a probe pass returns 1 if it was sent from
/// another CPU (see [`outgoing`]), otherwise 0.
#[inline(always)]
fn crossed<const PROBE: bool>(v: u64) -> u64 {
    if PROBE {
        u64::from(v != current_cpu())
    } else {
        black_box(v);
        0
    }
}

/// Pins the calling thread to `cpu`; on failure (e.g. fewer CPUs) says so
/// on stderr and carries on unpinned.
///
/// The thread-per-end rows (`tokio-2rt`, `crossbeam`) pin their two
/// threads to CPUs 0 and 1: left alone, Linux often wakes a blocked end on
/// the waker's CPU, and whether the two ends share a core then changes
/// from run to run (and the figure tenfold).
fn pin_or_note(cpu: usize) {
    if let Err(e) = pin_current_thread(cpu) {
        eprintln!("micro: note: running unpinned: {e}");
    }
}

/// Runs `f` on a new thread pinned to CPU 0 and returns its result.
fn on_cpu_0<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_or_note(0);
            f()
        })
        .join()
        .expect("pinned bench thread panicked")
    })
}

/// Prints (stderr) how many of a probe pass's `total` hops (ping-pong) or
/// children (spawn) were on another CPU than their sender / parent.
fn report_probe(bench: &str, imp: &str, crossed: u64, total: u64) {
    let what = if bench.starts_with("spawn") {
        "children ran on another CPU than their parent"
    } else {
        "hops landed on another CPU"
    };
    eprintln!(
        "micro: bench={bench} impl={imp} probe: {crossed} of {total} {what} ({:.0}%)",
        crossed as f64 * 100.0 / total as f64
    );
}

// ---------------------------------------------- blocking-channel ends ----

/// The sending half of a blocking channel, as the ping-pong uses it
/// (may's and crossbeam's; a loom channel can implement it too).
trait Put {
    /// Sends `v`, blocking (the fiber / thread) while the channel is full.
    fn put(&self, v: u64);
}

/// The receiving half of a blocking channel.
trait Take {
    /// Receives, blocking while the channel is empty; `None` once every
    /// sender is gone.
    fn take(&self) -> Option<u64>;
}

impl Put for may::sync::mpsc::Sender<u64> {
    fn put(&self, v: u64) {
        self.send(v).expect("may channel: receiver gone");
    }
}

impl Take for may::sync::mpsc::Receiver<u64> {
    fn take(&self) -> Option<u64> {
        self.recv().ok()
    }
}

impl Put for crossbeam_channel::Sender<u64> {
    fn put(&self, v: u64) {
        self.send(v).expect("crossbeam channel: receiver gone");
    }
}

impl Take for crossbeam_channel::Receiver<u64> {
    fn take(&self) -> Option<u64> {
        self.recv().ok()
    }
}

/// The end that starts each round trip: `trips` round trips, then hangs up
/// (dropping `tx` ends [`pong`]). Returns the hops it received from another
/// CPU (probe passes only).
fn ping<const PROBE: bool>(trips: u64, tx: impl Put, rx: impl Take) -> u64 {
    let mut crossed_hops = 0;
    for i in 0..black_box(trips) {
        tx.put(outgoing::<PROBE>(i));
        let v = rx.take().expect("the pong end hung up");
        crossed_hops += crossed::<PROBE>(v);
    }
    crossed_hops
}

/// The end that answers every message until [`ping`] hangs up.
fn pong<const PROBE: bool>(tx: impl Put, rx: impl Take) -> u64 {
    let mut crossed_hops = 0;
    while let Some(v) = rx.take() {
        crossed_hops += crossed::<PROBE>(v);
        tx.put(outgoing::<PROBE>(v));
    }
    crossed_hops
}

// ---------------------------------------------------------------- loom ----

impl<F: loom::sync::Flavour> Put for loom::sync::mpsc::Sender<u64, F> {
    fn put(&self, v: u64) {
        self.send(v).expect("loom channel: receiver gone");
    }
}

impl<F: loom::sync::Flavour> Take for loom::sync::mpsc::Receiver<u64, F> {
    fn take(&self) -> Option<u64> {
        self.recv().ok()
    }
}

/// Two fibers of one loop, through two local (no atomics) channels of
/// capacity 1, like tokio's.
fn loom_pingpong_local() -> Sample {
    loom_runtime().run(|| {
        best_of(LOCAL_TRIPS, |n| {
            let (tx_ab, rx_ab) = loom::sync::local::mpsc::channel(TOKIO_CHANNEL_CAP);
            let (tx_ba, rx_ba) = loom::sync::local::mpsc::channel(TOKIO_CHANNEL_CAP);
            let b = loom::spawn(move || pong::<false>(tx_ba, rx_ab));
            let a = loom::spawn(move || ping::<false>(n, tx_ab, rx_ba));
            a.join().expect("loom fiber panicked");
            b.join().expect("loom fiber panicked");
        })
    })
}

/// One ping-pong pass between a fiber on loop 0 and one on loop 1, through
/// two cross-thread channels of capacity 1. Returns the crossed hops.
fn loom_pingpong_two_loops<const PROBE: bool>(trips: u64) -> u64 {
    let (tx_ab, rx_ab) = loom::sync::mpsc::channel(TOKIO_CHANNEL_CAP);
    let (tx_ba, rx_ba) = loom::sync::mpsc::channel(TOKIO_CHANNEL_CAP);
    let b = loom::spawn_on(1, move || pong::<PROBE>(tx_ba, rx_ab));
    ping::<PROBE>(trips, tx_ab, rx_ba) + b.join().expect("loom fiber panicked")
}

fn loom_pingpong_cross() -> Sample {
    loom_two_loops().run(|| {
        let sample = best_of(CROSS_TRIPS, |n| {
            loom_pingpong_two_loops::<false>(n);
        });
        let crossed = loom_pingpong_two_loops::<true>(PROBE_OPS);
        report_probe("channel_pingpong_cross", "loom", crossed, 2 * PROBE_OPS);
        sample
    })
}

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

/// The `zone` bench's work without a zone.
#[inline(never)]
fn unzoned(x: u64) -> u64 {
    black_box(x)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(7)
}

/// The same work in a profiler zone, opened by `#[loom::profile]`.
#[inline(never)]
#[loom::profile]
fn zoned(x: u64) -> u64 {
    black_box(x)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(7)
}

/// `zone` with `work`, in the main fiber of a fresh runtime.
fn zone_loop(work: fn(u64) -> u64) -> Sample {
    loom_runtime().run(move || {
        best_of(ZONE_OPS, |n| {
            let mut acc = 0u64;
            for i in 0..black_box(n) {
                acc = work(acc ^ i);
            }
            black_box(acc);
        })
    })
}

fn zone_plain() -> Sample {
    in_child("zone", "plain")
}

fn zone_zoned() -> Sample {
    in_child("zone", ZONED_IMPL)
}

fn zone_plain_here() -> Sample {
    zone_loop(unzoned)
}

fn zone_zoned_here() -> Sample {
    zone_loop(zoned)
}

/// Two loops pinned to CPUs 0 and 1 (if this process may use both).
fn loom_two_loops() -> loom::Runtime {
    let builder = loom::Runtime::builder().threads(2);
    builder
        .clone()
        .pin(true)
        .build()
        .or_else(|e| {
            eprintln!("micro: loom loops not pinned: {e}");
            builder.build()
        })
        .expect("failed to build loom runtime")
}

/// Loop 0 spawns an empty fiber on loop 1 and joins it, `n` times.
fn loom_spawn_on_join() -> Sample {
    loom_two_loops().run(|| {
        let sample = best_of(SPAWN_ON_OPS, |n| {
            for _ in 0..black_box(n) {
                loom::spawn_on(1, || ())
                    .join()
                    .expect("loom fiber panicked");
            }
        });
        let parent_cpu = current_cpu();
        let crossed = (0..PROBE_OPS)
            .map(|_| {
                let child_cpu = loom::spawn_on(1, current_cpu).join().expect("panicked");
                u64::from(child_cpu != parent_cpu)
            })
            .sum();
        report_probe("spawn_on_join", "loom", crossed, PROBE_OPS);
        sample
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

/// One may ping-pong pass of `trips` round trips: both ends are coroutines
/// spawned by the caller. Returns the hops that crossed CPUs (probe only).
fn may_pingpong<const PROBE: bool>(trips: u64) -> u64 {
    let (tx_ab, rx_ab) = may::sync::mpsc::channel();
    let (tx_ba, rx_ba) = may::sync::mpsc::channel();
    // SAFETY: see `may_yield_pingpong`; the ends capture only channel
    // halves, use no thread-locals (`sched_getcpu` reads no TLS of ours)
    // and little stack.
    let b = unsafe { may::coroutine::spawn(move || pong::<PROBE>(tx_ba, rx_ab)) };
    // SAFETY: as above.
    let a = unsafe { may::coroutine::spawn(move || ping::<PROBE>(trips, tx_ab, rx_ba)) };
    a.join().expect("may coroutine panicked") + b.join().expect("may coroutine panicked")
}

fn may_pingpong_local() -> Sample {
    let driver_body = || {
        best_of(LOCAL_TRIPS, |n| {
            may_pingpong::<false>(n);
        })
    };
    // SAFETY: see `may_yield_pingpong`: the driver captures nothing, uses no
    // thread-locals and little stack.
    let driver = unsafe { may::coroutine::spawn(driver_body) };
    driver.join().expect("may driver coroutine panicked")
}

/// `channel_pingpong_cross` for may: in a child process with 2 workers.
fn may_pingpong_cross() -> Sample {
    in_child("channel_pingpong_cross", "may")
}

/// The child-process side of [`may_pingpong_cross`]: may has 2 workers
/// (pinned to CPUs 0 and 1, may's default); the ends are spawned from this
/// plain thread, so they start on different workers' queues (may's
/// `schedule_global` deals them round-robin).
fn may_pingpong_cross_here() -> Sample {
    let sample = best_of(CROSS_TRIPS, |n| {
        may_pingpong::<false>(n);
    });
    let crossed = may_pingpong::<true>(PROBE_OPS);
    report_probe("channel_pingpong_cross", "may", crossed, 2 * PROBE_OPS);
    sample
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

/// A `multi_thread` runtime with 2 workers, for the cross-thread benches.
fn tokio_multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("failed to build tokio runtime")
}

/// A second `current_thread` runtime, driven by its own thread (pinned to
/// CPU 1) until dropped: the far side of the `tokio-2rt` rows.
struct TokioRemote {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokioRemote {
    fn start() -> TokioRemote {
        let rt = tokio_runtime();
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            pin_or_note(1);
            rt.block_on(async {
                let _ = stopped.await;
            });
        });
        TokioRemote {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TokioRemote {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("tokio remote runtime thread panicked");
        }
    }
}

/// The end that starts each round trip; see [`ping`].
async fn tokio_ping<const PROBE: bool>(
    trips: u64,
    tx: tokio::sync::mpsc::Sender<u64>,
    mut rx: tokio::sync::mpsc::Receiver<u64>,
) -> u64 {
    let mut crossed_hops = 0;
    for i in 0..black_box(trips) {
        tx.send(outgoing::<PROBE>(i))
            .await
            .expect("the pong end hung up");
        let v = rx.recv().await.expect("the pong end hung up");
        crossed_hops += crossed::<PROBE>(v);
    }
    crossed_hops
}

/// The end that answers every message; see [`pong`].
async fn tokio_pong<const PROBE: bool>(
    tx: tokio::sync::mpsc::Sender<u64>,
    mut rx: tokio::sync::mpsc::Receiver<u64>,
) -> u64 {
    let mut crossed_hops = 0;
    while let Some(v) = rx.recv().await {
        crossed_hops += crossed::<PROBE>(v);
        tx.send(outgoing::<PROBE>(v))
            .await
            .expect("the ping end hung up");
    }
    crossed_hops
}

type TokioEnds = (
    tokio::sync::mpsc::Sender<u64>,
    tokio::sync::mpsc::Receiver<u64>,
);

/// The ping end's and the pong end's channel halves.
fn tokio_channels() -> (TokioEnds, TokioEnds) {
    let (tx_ab, rx_ab) = tokio::sync::mpsc::channel(TOKIO_CHANNEL_CAP);
    let (tx_ba, rx_ba) = tokio::sync::mpsc::channel(TOKIO_CHANNEL_CAP);
    ((tx_ab, rx_ba), (tx_ba, rx_ab))
}

fn tokio_pingpong_local() -> Sample {
    tokio_runtime().block_on(best_of_async(LOCAL_TRIPS, async |n| {
        let ((tx_a, rx_a), (tx_b, rx_b)) = tokio_channels();
        let b = tokio::spawn(tokio_pong::<false>(tx_b, rx_b));
        let a = tokio::spawn(tokio_ping::<false>(n, tx_a, rx_a));
        a.await.expect("tokio task panicked");
        b.await.expect("tokio task panicked");
    }))
}

/// One ping-pong pass on `rt`, both ends spawned from outside the runtime
/// (so they can start on different workers). Returns the crossed hops.
fn tokio_pingpong_spawned<const PROBE: bool>(rt: &tokio::runtime::Runtime, trips: u64) -> u64 {
    let ((tx_a, rx_a), (tx_b, rx_b)) = tokio_channels();
    let b = rt.spawn(tokio_pong::<PROBE>(tx_b, rx_b));
    let a = rt.spawn(tokio_ping::<PROBE>(trips, tx_a, rx_a));
    rt.block_on(async {
        a.await.expect("tokio task panicked") + b.await.expect("tokio task panicked")
    })
}

fn tokio_pingpong_cross() -> Sample {
    let rt = tokio_multi_thread_runtime();
    let sample = best_of(CROSS_TRIPS, |n| {
        tokio_pingpong_spawned::<false>(&rt, n);
    });
    let crossed = tokio_pingpong_spawned::<true>(&rt, PROBE_OPS);
    report_probe("channel_pingpong_cross", "tokio", crossed, 2 * PROBE_OPS);
    sample
}

/// One ping-pong pass with the ping end on the calling `current_thread`
/// runtime and the pong end on `remote`. Returns the crossed hops.
async fn tokio_2rt_pingpong<const PROBE: bool>(remote: &TokioRemote, trips: u64) -> u64 {
    let ((tx_a, rx_a), (tx_b, rx_b)) = tokio_channels();
    let b = remote.handle.spawn(tokio_pong::<PROBE>(tx_b, rx_b));
    let a = tokio::spawn(tokio_ping::<PROBE>(trips, tx_a, rx_a));
    a.await.expect("tokio task panicked") + b.await.expect("tokio task panicked")
}

fn tokio_2rt_pingpong_cross() -> Sample {
    let remote = TokioRemote::start();
    on_cpu_0(|| {
        tokio_runtime().block_on(async {
            let sample = best_of_async(REMOTE_OPS, async |n| {
                tokio_2rt_pingpong::<false>(&remote, n).await;
            })
            .await;
            let crossed = tokio_2rt_pingpong::<true>(&remote, PROBE_OPS).await;
            report_probe(
                "channel_pingpong_cross",
                "tokio-2rt",
                crossed,
                2 * PROBE_OPS,
            );
            sample
        })
    })
}

/// Spawns `PROBE_OPS` tasks with `spawn` and awaits each; returns how many
/// ran on a CPU other than the one the awaiting task was on afterwards.
async fn tokio_spawn_probe<F>(spawn: F) -> u64
where
    F: Fn() -> tokio::task::JoinHandle<u64>,
{
    let mut crossed = 0;
    for _ in 0..PROBE_OPS {
        let child_cpu = spawn().await.expect("tokio task panicked");
        crossed += u64::from(child_cpu != current_cpu());
    }
    crossed
}

fn tokio_spawn_on_join() -> Sample {
    let rt = tokio_multi_thread_runtime();
    let driver = rt.spawn(async {
        let sample = best_of_async(SPAWN_ON_OPS, async |n| {
            for _ in 0..black_box(n) {
                tokio::spawn(async {}).await.expect("tokio task panicked");
            }
        })
        .await;
        let crossed = tokio_spawn_probe(|| tokio::spawn(async { current_cpu() })).await;
        report_probe("spawn_on_join", "tokio", crossed, PROBE_OPS);
        sample
    });
    rt.block_on(driver).expect("tokio driver task panicked")
}

fn tokio_2rt_spawn_on_join() -> Sample {
    let remote = TokioRemote::start();
    on_cpu_0(|| {
        tokio_runtime().block_on(async {
            let sample = best_of_async(REMOTE_OPS, async |n| {
                for _ in 0..black_box(n) {
                    remote
                        .handle
                        .spawn(async {})
                        .await
                        .expect("tokio task panicked");
                }
            })
            .await;
            let crossed = tokio_spawn_probe(|| remote.handle.spawn(async { current_cpu() })).await;
            report_probe("spawn_on_join", "tokio-2rt", crossed, PROBE_OPS);
            sample
        })
    })
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

// ----------------------------------------------------------- crossbeam ----

/// One ping-pong pass between two new OS threads, ping pinned to CPU 0 and
/// pong to CPU 1 (see [`pin_or_note`]), over `crossbeam_channel::bounded(1)`
/// channels with blocking `recv`. Returns the crossed hops.
fn crossbeam_pingpong<const PROBE: bool>(trips: u64) -> u64 {
    let (tx_ab, rx_ab) = crossbeam_channel::bounded(1);
    let (tx_ba, rx_ba) = crossbeam_channel::bounded(1);
    std::thread::scope(|s| {
        let b = s.spawn(move || {
            pin_or_note(1);
            pong::<PROBE>(tx_ba, rx_ab)
        });
        let a = s.spawn(move || {
            pin_or_note(0);
            ping::<PROBE>(trips, tx_ab, rx_ba)
        });
        a.join().expect("crossbeam ping thread panicked")
            + b.join().expect("crossbeam pong thread panicked")
    })
}

fn crossbeam_pingpong_cross() -> Sample {
    let sample = best_of(CROSS_TRIPS, |n| {
        crossbeam_pingpong::<false>(n);
    });
    let crossed = crossbeam_pingpong::<true>(PROBE_OPS);
    report_probe(
        "channel_pingpong_cross",
        "crossbeam",
        crossed,
        2 * PROBE_OPS,
    );
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
