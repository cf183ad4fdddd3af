//! What calling async code from a fiber costs (issue 18): `loom::block_on`
//! and the tokio bridge (`loom::compat::tokio::block_on`), against calling
//! tokio directly.
//!
//! Run with `cargo run --release -p loom-benches --bin compat [FILTER]
//! [--quick]`; lines are `bench=<name> impl=<impl> ns_per_op=<f>
//! allocs_per_op=<f>` on stdout, as for `micro`. `--quick` runs a tenth of
//! the ops (a smoke run).
//!
//! * `block_on_ready`: run a future that is ready at once, from
//!   synchronous code. `loom` is `loom::block_on(ready(i))` on a fiber;
//!   `tokio` is `Runtime::block_on(ready(i))` of a `current_thread`
//!   runtime on a plain thread. One op is one call.
//! * `bridge_call`: run `async { i }` where tokio's runtime runs it and
//!   wait for the result. `loom` is `compat::tokio::block_on` from a fiber
//!   (a task spawned on the bridge's one worker; the fiber parks, the
//!   task's completion wakes it through its loop's mailbox). The tokio
//!   rows: `tokio-spawn-await`, `tokio::spawn(..).await` from a task of a
//!   `multi_thread` runtime of 1 worker (spawn and join, no thread hop);
//!   `tokio-thread-spawn`, `handle.block_on(handle.spawn(..))` from a
//!   plain thread (the same hop as the bridge: a task on a worker, a
//!   thread waiting for it); `tokio-handle-block_on`,
//!   `handle.block_on(async { i })` from a plain thread (no task: the
//!   future runs on the calling thread). One op is one call.
//! * `futures_channel_pingpong`: two ends on one thread bounce a `u64`
//!   through two `futures_channel::mpsc` channels of capacity 1. `loom` is
//!   two fibers, each receiving with `loom::block_on`; `tokio` two tasks of
//!   a `current_thread` runtime; `loom-native` is the same ping-pong over
//!   `loom::sync::local::mpsc` without futures, for reference. One op is
//!   one round trip.
//!
//! Each measurement is the fastest of `REPS` timed passes after a warm-up
//! pass in the same runtime, with its allocation count (all threads).
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::future::{Future, poll_fn, ready};
use std::hint::black_box;
use std::io::Write;
use std::pin::Pin;

use futures_channel::mpsc;
use futures_core::Stream;
use loom_benches::{CountingAlloc, REPS, Sample, best_of, best_of_async, format_line, selected};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Calls per timed pass of `block_on_ready`.
const READY_OPS: u64 = 1_000_000;
/// Calls per timed pass of `bridge_call` (each hops threads twice).
const BRIDGE_OPS: u64 = 20_000;
/// Round trips per timed pass of `futures_channel_pingpong`.
const TRIPS: u64 = 200_000;

struct Case {
    bench: &'static str,
    imp: &'static str,
    ops: u64,
    run: fn(u64) -> Sample,
}

const CASES: &[Case] = &[
    Case {
        bench: "block_on_ready",
        imp: "loom",
        ops: READY_OPS,
        run: loom_block_on_ready,
    },
    Case {
        bench: "block_on_ready",
        imp: "tokio",
        ops: READY_OPS,
        run: tokio_block_on_ready,
    },
    Case {
        bench: "bridge_call",
        imp: "loom",
        ops: BRIDGE_OPS,
        run: loom_bridge_call,
    },
    Case {
        bench: "bridge_call",
        imp: "tokio-spawn-await",
        ops: BRIDGE_OPS,
        run: tokio_spawn_await,
    },
    Case {
        bench: "bridge_call",
        imp: "tokio-thread-spawn",
        ops: BRIDGE_OPS,
        run: tokio_thread_spawn,
    },
    Case {
        bench: "bridge_call",
        imp: "tokio-handle-block_on",
        ops: BRIDGE_OPS,
        run: tokio_handle_block_on,
    },
    Case {
        bench: "futures_channel_pingpong",
        imp: "loom",
        ops: TRIPS,
        run: loom_futures_pingpong,
    },
    Case {
        bench: "futures_channel_pingpong",
        imp: "tokio",
        ops: TRIPS,
        run: tokio_futures_pingpong,
    },
    Case {
        bench: "futures_channel_pingpong",
        imp: "loom-native",
        ops: TRIPS,
        run: loom_native_pingpong,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    let mut stdout = std::io::stdout().lock();
    for case in CASES
        .iter()
        .filter(|c| selected(filter.as_deref(), c.bench))
    {
        let ops = if quick { case.ops / 10 } else { case.ops };
        eprintln!(
            "compat: bench={} impl={} ({ops} ops x {REPS} reps, best reported)",
            case.bench, case.imp
        );
        let sample = (case.run)(ops);
        writeln!(stdout, "{}", format_line(case.bench, case.imp, sample))
            .and_then(|()| stdout.flush())
            .expect("write to stdout");
    }
}

fn loom_runtime() -> loom::Runtime {
    loom::Runtime::builder()
        .fibers(16)
        .build()
        .expect("build a loom runtime")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

// ---- block_on_ready -------------------------------------------------------

fn loom_block_on_ready(ops: u64) -> Sample {
    loom_runtime().run(move || {
        best_of(ops, |n| {
            for i in 0..n {
                black_box(loom::block_on(ready(black_box(i))));
            }
        })
    })
}

fn tokio_block_on_ready(ops: u64) -> Sample {
    let rt = current_thread();
    best_of(ops, |n| {
        for i in 0..n {
            black_box(rt.block_on(ready(black_box(i))));
        }
    })
}

// ---- bridge_call ----------------------------------------------------------

fn loom_bridge_call(ops: u64) -> Sample {
    loom_runtime().run(move || {
        best_of(ops, |n| {
            for i in 0..n {
                let i = black_box(i);
                let got = loom::compat::tokio::block_on(async move { i }).expect("bridge call");
                black_box(got);
            }
        })
    })
}

fn tokio_spawn_await(ops: u64) -> Sample {
    one_worker().block_on(async move {
        // On a worker, like the bridge's tasks (block_on's own future is
        // not on one).
        tokio::spawn(best_of_async(ops, async |n| {
            for i in 0..n {
                let i = black_box(i);
                black_box(tokio::spawn(async move { i }).await.expect("task"));
            }
        }))
        .await
        .expect("bench task")
    })
}

fn tokio_thread_spawn(ops: u64) -> Sample {
    let rt = one_worker();
    let handle = rt.handle();
    best_of(ops, |n| {
        for i in 0..n {
            let i = black_box(i);
            black_box(
                handle
                    .block_on(handle.spawn(async move { i }))
                    .expect("task"),
            );
        }
    })
}

fn tokio_handle_block_on(ops: u64) -> Sample {
    let rt = one_worker();
    let handle = rt.handle();
    best_of(ops, |n| {
        for i in 0..n {
            let i = black_box(i);
            black_box(handle.block_on(async move { i }));
        }
    })
}

// ---- futures_channel_pingpong --------------------------------------------

fn next<T>(rx: &mut mpsc::Receiver<T>) -> impl Future<Output = Option<T>> + '_ {
    poll_fn(move |cx| Pin::new(&mut *rx).poll_next(cx))
}

async fn send<T>(tx: &mut mpsc::Sender<T>, value: T) {
    poll_fn(|cx| tx.poll_ready(cx))
        .await
        .expect("receiver gone");
    tx.start_send(value).expect("receiver gone");
}

type Ends = (mpsc::Sender<u64>, mpsc::Receiver<u64>);

fn channels() -> (Ends, Ends) {
    let (tx_ab, rx_ab) = mpsc::channel(1);
    let (tx_ba, rx_ba) = mpsc::channel(1);
    ((tx_ab, rx_ba), (tx_ba, rx_ab))
}

fn loom_futures_pingpong(ops: u64) -> Sample {
    loom_runtime().run(move || {
        best_of(ops, |n| {
            let ((mut tx_a, mut rx_a), (mut tx_b, mut rx_b)) = channels();
            let pong = loom::spawn(move || {
                while let Some(v) = loom::block_on(next(&mut rx_b)) {
                    loom::block_on(send(&mut tx_b, v + 1));
                }
            });
            for i in 0..n {
                loom::block_on(send(&mut tx_a, i));
                black_box(loom::block_on(next(&mut rx_a)));
            }
            drop(tx_a);
            pong.join().expect("pong fiber");
        })
    })
}

fn tokio_futures_pingpong(ops: u64) -> Sample {
    let rt = current_thread();
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &rt,
        best_of_async(ops, async |n| {
            let ((mut tx_a, mut rx_a), (mut tx_b, mut rx_b)) = channels();
            let pong = tokio::task::spawn_local(async move {
                while let Some(v) = next(&mut rx_b).await {
                    send(&mut tx_b, v + 1).await;
                }
            });
            let ping = tokio::task::spawn_local(async move {
                for i in 0..n {
                    send(&mut tx_a, i).await;
                    black_box(next(&mut rx_a).await);
                }
            });
            ping.await.expect("ping task");
            pong.await.expect("pong task");
        }),
    )
}

fn loom_native_pingpong(ops: u64) -> Sample {
    use loom::sync::local::mpsc as local;
    loom_runtime().run(move || {
        best_of(ops, |n| {
            let (tx_ab, rx_ab) = local::channel::<u64>(1);
            let (tx_ba, rx_ba) = local::channel::<u64>(1);
            let pong = loom::spawn(move || {
                while let Ok(v) = rx_ab.recv() {
                    tx_ba.send(v + 1).expect("ping end gone");
                }
            });
            for i in 0..n {
                tx_ab.send(i).expect("pong end gone");
                black_box(rx_ba.recv().expect("pong end gone"));
            }
            drop(tx_ab);
            pong.join().expect("pong fiber");
        })
    })
}
