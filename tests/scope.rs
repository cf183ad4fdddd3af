//! `loom::fiber::scope`: scoped fibers borrow from the caller, and the
//! scope returns — or unwinds, or is abandoned — only after every one of
//! them finished: on a normal return, a panic in the scope's body or in a
//! scoped fiber, cancellation of the scope's fiber, `Scope::cancel`,
//! runtime shutdown, and under `panic = "abort"`. Scoped spawns allocate
//! nothing.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use loom::fiber::{Builder, is_cancelled, scope};
use loom::time::sleep;
use loom_tests::{
    CountingAlloc, killed_by, on_each_backend, on_each_backend_with, run_child, thread_allocations,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const CHILD: &str = env!("CARGO_BIN_EXE_loom-child");

/// Long enough that only a cancellation ends it within a test; short
/// enough that a bug still ends the test.
const LONG: Duration = Duration::from_secs(10);

/// What "finishes promptly" means below; far above the few tens of
/// milliseconds these tests take.
const PROMPT: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cancelled<T>(result: &io::Result<T>) -> bool {
    result.as_ref().is_err_and(is_cancelled)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(non-string panic)".to_owned())
}

/// Works (yielding, not blocking) for `span` after its cancellation,
/// bumping `counter`; returns how often.
fn keep_working(span: Duration, counter: &Cell<u32>) {
    let until = Instant::now() + span;
    while Instant::now() < until {
        counter.set(counter.get() + 1);
        loom::yield_now();
    }
}

/// Adds one to a borrowed counter when dropped.
struct CountDrop<'a>(&'a Cell<u32>);

impl Drop for CountDrop<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn scoped_fibers_borrow_from_the_caller_and_return_through_join() {
    on_each_backend(|| {
        let mut numbers: Vec<u64> = (1..=8).collect();
        let factor = 3u64;
        let text = String::from("borrowed words");
        let unjoined_done = Cell::new(false);
        let (left, right) = numbers.split_at_mut(4);
        let (a, b, first_word) = scope(|s| {
            // `&mut` halves of one vector, one per fiber; `factor` shared.
            let a = s.spawn(|| {
                for n in left.iter_mut() {
                    *n *= factor;
                    loom::yield_now();
                }
                left.iter().sum::<u64>()
            });
            let b = s.spawn(|| {
                for n in right.iter_mut() {
                    *n *= factor;
                    sleep(ms(1)).unwrap();
                }
                right.iter().sum::<u64>()
            });
            // A result that borrows from the caller.
            let word = s.spawn(|| text.split(' ').next().unwrap());
            // Never joined: still waited for.
            s.spawn(|| {
                sleep(ms(20)).unwrap();
                unjoined_done.set(true);
            });
            (a.join().unwrap(), b.join().unwrap(), word.join().unwrap())
        });
        assert_eq!((a, b), (30, 78));
        assert_eq!(first_word, "borrowed");
        assert!(unjoined_done.get(), "scope waited for the unjoined fiber");
        assert_eq!(numbers, [3, 6, 9, 12, 15, 18, 21, 24]);
    });
}

#[test]
fn scoped_fibers_spawn_scoped_fibers_and_results_are_dropped_in_scope() {
    on_each_backend(|| {
        let spawned = Cell::new(0u32);
        let drops = Cell::new(0u32);
        scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    s.spawn(|| {
                        sleep(ms(2)).unwrap();
                        spawned.set(spawned.get() + 1);
                    });
                    spawned.set(spawned.get() + 1);
                });
            }
            // Results with a destructor that borrows: dropped (once) before
            // `scope` returns, whether the handle goes before or after the
            // fiber finished.
            drop(s.spawn(|| {
                sleep(ms(5)).unwrap();
                CountDrop(&drops)
            }));
            let finished_first = s.spawn(|| CountDrop(&drops));
            while !finished_first.is_finished() {
                loom::yield_now();
            }
            drop(finished_first);
            let joined = s.spawn(|| CountDrop(&drops)).join().unwrap();
            drop(joined);
        });
        assert_eq!(spawned.get(), 8);
        assert_eq!(drops.get(), 3);
    });
}

/// Blocks in its destructor, then writes to a borrowed flag.
struct SlowDrop<'a>(&'a Cell<bool>);

impl Drop for SlowDrop<'_> {
    fn drop(&mut self) {
        sleep(ms(20)).unwrap();
        self.0.set(true);
    }
}

#[test]
fn an_unjoined_result_that_blocks_in_drop_is_dropped_before_scope_returns() {
    on_each_backend(|| {
        let dropped = Cell::new(false);
        let start = Instant::now();
        scope(|s| {
            drop(s.spawn(|| {
                loom::yield_now();
                SlowDrop(&dropped)
            }));
        });
        assert!(dropped.get(), "the result's drop finished inside the scope");
        assert!(start.elapsed() >= ms(20));
    });
}

#[test]
fn a_panicking_scoped_fiber_makes_scope_panic_after_the_others_finished() {
    on_each_backend(|| {
        // Handle dropped at once: the fiber reports its own panic.
        let late = Cell::new(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            scope(|s| {
                s.spawn(|| panic!("scoped boom"));
                s.spawn(|| {
                    sleep(ms(30)).unwrap();
                    late.set(true);
                });
                7
            })
        }));
        let payload = outcome.expect_err("scope re-raises the panic");
        assert_eq!(panic_message(&*payload), "a scoped fiber panicked");
        assert!(
            late.get(),
            "the scope panicked only after the others finished"
        );

        // Handle dropped after the fiber panicked: reported by the handle.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            scope(|s| {
                let h = s.spawn(|| panic!("scoped boom, seen late"));
                while !h.is_finished() {
                    loom::yield_now();
                }
            })
        }));
        assert_eq!(
            panic_message(&*outcome.unwrap_err()),
            "a scoped fiber panicked"
        );

        // A panic taken by `join` is handled: the scope returns normally.
        let value = scope(|s| {
            let h = s.spawn(|| -> u32 { panic!("handled") });
            assert_eq!(panic_message(&*h.join().unwrap_err()), "handled");
            5
        });
        assert_eq!(value, 5);
    });
}

#[test]
fn a_panic_in_the_body_cancels_the_scoped_fibers_and_waits_for_them() {
    on_each_backend(|| {
        let sleeper_cancelled = Cell::new(false);
        let worker_cancelled = Cell::new(false);
        let worked_after = Cell::new(0u32);
        let finished = Cell::new(0u32);
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            scope(|s| {
                s.spawn(|| {
                    sleeper_cancelled.set(cancelled(&sleep(LONG)));
                    finished.set(finished.get() + 1);
                });
                s.spawn(|| {
                    worker_cancelled.set(cancelled(&sleep(LONG)));
                    keep_working(ms(30), &worked_after);
                    finished.set(finished.get() + 1);
                });
                // Both are blocked in their sleeps now.
                loom::yield_now();
                panic!("body boom");
            })
        }));
        let elapsed = start.elapsed();
        assert_eq!(panic_message(&*outcome.unwrap_err()), "body boom");
        assert!(sleeper_cancelled.get() && worker_cancelled.get());
        assert_eq!(finished.get(), 2, "both finished before the panic resumed");
        assert!(worked_after.get() > 0);
        assert!(elapsed >= ms(30) && elapsed < PROMPT, "{elapsed:?}");
    });
}

/// What a scope run by a fiber that gets cancelled saw.
#[derive(Clone, Copy, Debug, Default)]
struct CancelledOwner {
    body_cancelled: bool,
    sleeper_cancelled: bool,
    worker_cancelled: bool,
    worked_after: u32,
    worker_done: bool,
}

/// A fiber opens a scope with a sleeper and a worker that goes on for
/// 30 ms after its cancellation; it is cancelled while its body still
/// sleeps (`body_blocks`) or while it already waits for its children.
fn cancel_the_scope_fiber(body_blocks: bool) -> (CancelledOwner, Duration) {
    let report = Rc::new(Cell::new(None));
    let out = report.clone();
    let owner = loom::spawn(move || {
        let mut seen = CancelledOwner::default();
        let sleeper_cancelled = Cell::new(false);
        let worker_cancelled = Cell::new(false);
        let worked_after = Cell::new(0u32);
        let worker_done = Cell::new(false);
        seen.body_cancelled = scope(|s| {
            s.spawn(|| sleeper_cancelled.set(cancelled(&sleep(LONG))));
            s.spawn(|| {
                worker_cancelled.set(cancelled(&sleep(LONG)));
                keep_working(ms(30), &worked_after);
                worker_done.set(true);
            });
            body_blocks && cancelled(&sleep(LONG))
        });
        seen.sleeper_cancelled = sleeper_cancelled.get();
        seen.worker_cancelled = worker_cancelled.get();
        seen.worked_after = worked_after.get();
        seen.worker_done = worker_done.get();
        out.set(Some(seen));
    });
    sleep(ms(10)).unwrap();
    assert!(!owner.is_finished());
    let start = Instant::now();
    owner.cancel();
    owner.join().unwrap();
    let seen = report.get().expect("the scope's fiber returned");
    (seen, start.elapsed())
}

#[test]
fn cancelling_the_scope_fiber_cancels_its_children_and_still_waits_for_them() {
    on_each_backend(|| {
        for body_blocks in [true, false] {
            let (seen, elapsed) = cancel_the_scope_fiber(body_blocks);
            assert_eq!(seen.body_cancelled, body_blocks, "{seen:?}");
            assert!(seen.sleeper_cancelled && seen.worker_cancelled, "{seen:?}");
            assert!(seen.worker_done && seen.worked_after > 0, "{seen:?}");
            assert!(elapsed >= ms(30) && elapsed < PROMPT, "{elapsed:?}");
        }
    });
}

#[test]
fn scope_cancel_cancels_every_scoped_fiber_and_handle_cancel_one() {
    on_each_backend(|| {
        let start = Instant::now();
        let (running, late) = scope(|s| {
            let a = s.spawn(|| sleep(LONG));
            let b = s.spawn(|| sleep(LONG));
            let not_started = s.spawn(|| sleep(LONG));
            loom::yield_now();
            s.cancel();
            // Spawned after the cancel: cancelled too.
            let late = s.spawn(|| sleep(LONG));
            let running = [a, b, not_started].map(|h| h.join().unwrap());
            (running, late.join().unwrap())
        });
        assert!(running.iter().all(cancelled), "{running:?}");
        assert!(cancelled(&late), "{late:?}");
        // The scope's own fiber is not cancelled.
        sleep(ms(1)).unwrap();

        let (one, other) = scope(|s| {
            let one = s.spawn(|| sleep(LONG));
            let other = s.spawn(|| sleep(ms(5)));
            loom::yield_now();
            one.cancel();
            (one.join().unwrap(), other.join().unwrap())
        });
        assert!(cancelled(&one));
        assert!(other.is_ok());
        assert!(start.elapsed() < PROMPT);
    });
}

#[test]
fn scoped_fibers_inherit_the_spawners_deadline_which_does_not_cut_the_wait_short() {
    on_each_backend(|| {
        let start = Instant::now();
        let deadline = start + ms(30);
        let seen = Cell::new(None);
        let grandchild_seen = Cell::new(None);
        let slept = Cell::new(None);
        let worked_after = Cell::new(0u32);
        let done = Cell::new(false);
        loom::time::with_deadline(deadline, || {
            scope(|s| {
                s.spawn(|| {
                    seen.set(loom::time::deadline());
                    // A tighter deadline of its own, for a fiber it spawns.
                    loom::time::with_deadline(start + ms(20), || {
                        s.spawn(|| grandchild_seen.set(loom::time::deadline()));
                    });
                    slept.set(Some(sleep(LONG).map_err(|e| e.kind())));
                    // Work on past the deadline: the scope still waits.
                    keep_working(ms(30), &worked_after);
                    done.set(true);
                });
            });
        });
        let elapsed = start.elapsed();
        assert_eq!(seen.get(), Some(deadline));
        assert_eq!(grandchild_seen.get(), Some(start + ms(20)));
        assert_eq!(slept.get(), Some(Err(io::ErrorKind::TimedOut)));
        assert!(done.get() && worked_after.get() > 0);
        assert!(elapsed >= ms(60) && elapsed < PROMPT, "{elapsed:?}");
        // Outside the scope, no deadline is left behind.
        assert_eq!(loom::time::deadline(), None);
    });
}

#[test]
fn the_builder_spawns_named_scoped_fibers_and_reports_errors() {
    on_each_backend(|| {
        let mut hits = 0;
        scope(|s| -> io::Result<()> {
            let h = Builder::new()
                .name("scoped")
                .stack_size(32 * 1024)
                .spawn_scoped(s, || {
                    hits += 1;
                    loom::fiber::current().name().map(str::to_owned)
                })?;
            assert_eq!(h.fiber().name(), Some("scoped"));
            assert_eq!(h.join().unwrap().as_deref(), Some("scoped"));
            let err = Builder::new()
                .stack_size(1)
                .spawn_scoped(s, || ())
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            Ok(())
        })
        .unwrap();
        assert_eq!(hits, 1);
    });
}

#[test]
fn scope_outside_a_fiber_panics_with_a_helpful_message() {
    let payload = catch_unwind(|| scope(|_| ())).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("loom::fiber::scope"), "{message}");
}

/// What a fiber with a scope open at shutdown left behind.
#[derive(Default)]
struct ShutdownProbe {
    events: RefCell<Vec<&'static str>>,
}

#[test]
fn shutdown_cancels_an_open_scope_and_it_returns_after_its_children() {
    let start = Instant::now();
    let probes = on_each_backend_with(
        |b| b.fibers(64).shutdown_timeout(PROMPT),
        || {
            let probe = Rc::new(ShutdownProbe::default());
            let seen = probe.clone();
            drop(loom::spawn(move || {
                let events = &seen.events;
                scope(|s| {
                    s.spawn(|| {
                        if cancelled(&sleep(LONG)) {
                            events.borrow_mut().push("sleeper cancelled");
                        }
                    });
                    s.spawn(|| {
                        let _ = sleep(LONG);
                        keep_working(ms(20), &Cell::new(0));
                        events.borrow_mut().push("worker done");
                    });
                    if cancelled(&sleep(LONG)) {
                        events.borrow_mut().push("body cancelled");
                    }
                });
                events.borrow_mut().push("scope returned");
            }));
            loom::yield_now();
            // Main returns: the runtime shuts down with the scope open.
            probe
        },
    );
    for probe in probes {
        assert_eq!(
            *probe.events.borrow(),
            [
                "body cancelled",
                "sleeper cancelled",
                "worker done",
                "scope returned"
            ]
        );
    }
    assert!(start.elapsed() < PROMPT);
}

/// Where the abandoned scope's fiber keeps its locals, and whether its
/// frame was ever unwound.
#[derive(Default)]
struct AbandonProbe {
    sentinel_at: Cell<usize>,
    counter_at: Cell<usize>,
    scope_returned: Cell<bool>,
    frame_dropped: Cell<bool>,
}

struct FrameDropped(Rc<AbandonProbe>);

impl Drop for FrameDropped {
    fn drop(&mut self) {
        self.0.frame_dropped.set(true);
    }
}

const SENTINEL: u64 = 0x5c09_e5c0_9e5c_09e5;

#[test]
fn a_scope_whose_child_ignores_shutdown_is_abandoned_with_its_stack_leaked() {
    let start = Instant::now();
    let probes = on_each_backend_with(
        |b| b.fibers(16).shutdown_timeout(ms(100)),
        || {
            let probe = Rc::new(AbandonProbe::default());
            let seen = probe.clone();
            drop(loom::spawn(move || {
                let _frame = FrameDropped(seen.clone());
                let sentinel = std::hint::black_box(SENTINEL);
                let counter = Cell::new(0u64);
                seen.sentinel_at.set(std::ptr::from_ref(&sentinel) as usize);
                seen.counter_at.set(counter.as_ptr() as usize);
                scope(|s| {
                    // Ignores cancellation, and borrows the scope's frame.
                    s.spawn(|| {
                        loop {
                            counter.set(counter.get() + 1);
                            let _ = sleep(ms(1));
                            loom::yield_now();
                        }
                    });
                });
                seen.scope_returned.set(true);
            }));
            loom::yield_now();
            probe
        },
    );
    assert!(start.elapsed() < PROMPT);
    // Stacks of later runtimes must not land on the leaked ones.
    loom_tests::runtime().run(|| {
        let handles: Vec<_> = (0..32)
            .map(|i| loom::spawn(move || std::hint::black_box([i as u8; 8192])[17]))
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    for probe in probes {
        assert!(
            !probe.scope_returned.get(),
            "the scope's fiber is abandoned"
        );
        assert!(!probe.frame_dropped.get(), "its frame is never unwound");
        // SAFETY: the addresses are of locals in the abandoned scope
        // fiber's frame, whose stack loom leaks (never unmaps or reuses):
        // what this test checks.
        let (sentinel, counter) = unsafe {
            (
                std::ptr::read_volatile(probe.sentinel_at.get() as *const u64),
                std::ptr::read_volatile(probe.counter_at.get() as *const u64),
            )
        };
        assert_eq!(sentinel, SENTINEL);
        assert!(counter > 0);
    }
}

#[test]
fn scoped_spawns_do_not_allocate() {
    let figures = on_each_backend(|| {
        let data: [u64; 64] = std::array::from_fn(|i| i as u64);
        let named = Builder::new().name("scoped");
        let round = |total: &mut u64| {
            scope(|s| {
                let mut handles = [const { None }; 48];
                for (i, slot) in handles.iter_mut().enumerate() {
                    let data = &data;
                    *slot = Some(s.spawn(move || data[i] * 2));
                }
                // Dropped unjoined (waited for by the scope) ...
                for _ in 0..8 {
                    drop(s.spawn(|| sleep(Duration::ZERO).unwrap()));
                }
                // ... named, through the builder ...
                let h = named.spawn_scoped(s, || data[1]).unwrap();
                *total += h.join().unwrap();
                for h in handles.iter_mut() {
                    *total += h.take().unwrap().join().unwrap();
                }
            });
        };
        let mut total = 0;
        // Warm-up: the pool grows to the stacks one round holds at once.
        round(&mut total);
        let spawns_per_round = 48 + 8 + 1;
        let rounds = 200u64;
        let before = thread_allocations();
        for _ in 0..rounds {
            round(&mut total);
        }
        let allocations = thread_allocations() - before;
        // Per round: twice 0 + 1 + ... + 47, plus data[1].
        assert_eq!(total, (rounds + 1) * (47 * 48 + 1));
        (allocations, rounds * spawns_per_round)
    });
    for (allocations, spawns) in figures {
        loom_tests::say(format_args!(
            "scoped_spawns_do_not_allocate: {allocations} allocations in {spawns} scoped spawns"
        ));
        assert_eq!(
            allocations, 0,
            "{allocations} allocations in {spawns} spawns"
        );
    }
}

/// The `loom-child` program built with `panic = "abort"` (see
/// tests/process.rs, which shares the build).
fn abort_child() -> String {
    std::env::var("LOOM_ABORT_CHILD_BIN").unwrap_or_else(|_| {
        let target_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/panic-abort");
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--profile",
                "abort",
                "-p",
                "loom-tests",
                "--bin",
                "loom-child",
            ])
            .args(["--target-dir", target_dir])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the panic=abort child failed");
        format!("{target_dir}/abort/loom-child")
    })
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn scopes_are_sound_at_shutdown_under_both_panic_strategies() {
    let abort = abort_child();
    for backend in loom::rt::Backend::available() {
        let backend = backend.to_string();
        let env = [("LOOM_BACKEND", backend.as_str())];
        for program in [CHILD, abort.as_str()] {
            let output = run_child(program, "scope-shutdown", &env);
            let context = format!("{program} on {backend}: {}", stderr(&output));
            assert!(output.status.success(), "{context}");
            assert_eq!(stdout(&output).trim(), "scope shutdown ok", "{context}");
        }

        // A panicking scoped fiber: the scope panics after the other one
        // finished (unwind: main fails, exit 101), or the process aborts.
        let output = run_child(CHILD, "scope-child-panic", &env);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(101), "{backend}: {err}");
        assert!(err.contains("boom in a scoped fiber"), "{err}");
        assert!(err.contains("a scoped fiber panicked"), "{err}");
        assert!(
            stdout(&output).contains("the other scoped fiber finished"),
            "{backend}: {err}"
        );
        let output = run_child(&abort, "scope-child-panic", &env);
        let err = stderr(&output);
        assert_eq!(killed_by(&output), Some(libc::SIGABRT), "{backend}: {err}");
        assert!(err.contains("boom in a scoped fiber"), "{err}");
        assert!(!err.contains("a scoped fiber panicked"), "{err}");
    }
}
