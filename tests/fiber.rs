//! Spawning, joining, panics, cancellation and shutdown of fibers.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loom_tests::runtime;

#[test]
fn spawned_fibers_start_in_fifo_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let seen = log.clone();
    runtime().run(move || {
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let log = seen.clone();
                loom::spawn(move || log.borrow_mut().push(i))
            })
            .collect();
        // Spawning does not run the child: the parent keeps going.
        assert!(seen.borrow().is_empty());
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(*log.borrow(), [0, 1, 2, 3, 4]);
}

#[test]
fn yielding_fibers_interleave_round_robin() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let seen = log.clone();
    runtime().run(move || {
        let handles: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                let log = seen.clone();
                loom::spawn(move || {
                    for i in 0..3 {
                        log.borrow_mut().push(format!("{name}{i}"));
                        loom::yield_now();
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    assert_eq!(log.borrow().join(" "), "a0 b0 c0 a1 b1 c1 a2 b2 c2");
}

#[test]
fn one_hundred_thousand_fibers_on_one_loop() {
    // Every handle is held until all are spawned: one stack each, at once.
    let n = loom_tests::fibers_within_budget("one_hundred_thousand_fibers_on_one_loop", 100_000);
    let rt = loom::Runtime::builder()
        .fibers(1024)
        .max_fibers(n + 1)
        .stack_size(16 * 1024)
        .build()
        .unwrap();
    let sum = rt.run(move || {
        let handles: Vec<_> = (0..n as u64).map(|i| loom::spawn(move || i)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let n = n as u64;
    assert_eq!(sum, n * (n - 1) / 2);
}

#[test]
fn nested_spawns_join_through_every_level() {
    fn tree(depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let left = loom::spawn(move || tree(depth - 1));
        let right = loom::spawn(move || tree(depth - 1));
        left.join().unwrap() + right.join().unwrap()
    }
    let leaves = runtime().run(|| tree(10));
    assert_eq!(leaves, 1024);
}

#[test]
fn a_panicking_fiber_hands_its_payload_to_join_and_others_keep_running() {
    let outcome = runtime().run(|| {
        let survivor = loom::spawn(|| {
            loom::yield_now();
            loom::time::sleep(Duration::from_millis(2)).unwrap();
            "still here"
        });
        let failed = loom::spawn(|| -> u32 { panic!("fiber boom {}", std::hint::black_box(7)) });
        let message = panic_message(failed.join().expect_err("the fiber panicked"));
        (message, survivor.join().unwrap())
    });
    assert_eq!(outcome, ("fiber boom 7".to_owned(), "still here"));
}

#[test]
fn cancel_interrupts_a_sleeping_fiber() {
    runtime().run(|| {
        let sleeper = loom::spawn(|| {
            let first = loom::time::sleep(Duration::from_secs(3600));
            // Cancellation is sticky: the next blocking call fails too.
            let second = loom::time::sleep(Duration::from_millis(1));
            (
                first.map_err(|e| e.raw_os_error()),
                second.map_err(|e| e.raw_os_error()),
            )
        });
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        assert!(!sleeper.is_finished());
        let start = Instant::now();
        sleeper.cancel();
        let (first, second) = sleeper.join().unwrap();
        assert_eq!(first, Err(Some(libc::ECANCELED)));
        assert_eq!(second, Err(Some(libc::ECANCELED)));
        assert!(start.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn cancel_before_the_first_blocking_call_and_after_finishing() {
    runtime().run(|| {
        let fiber = loom::spawn(|| loom::time::sleep(Duration::from_millis(1)));
        fiber.cancel(); // before it ever ran
        assert_eq!(
            fiber.join().unwrap().unwrap_err().raw_os_error(),
            Some(libc::ECANCELED)
        );

        let done = loom::spawn(|| 3);
        loom::yield_now();
        assert!(done.is_finished());
        done.cancel(); // no effect on a finished fiber
        assert_eq!(done.join().unwrap(), 3);
    });
}

#[test]
fn cancel_interrupts_a_fiber_blocked_in_join_and_detaches_its_target() {
    let target_done = Rc::new(Cell::new(false));
    let flag = target_done.clone();
    runtime().run(move || {
        let target = loom::spawn(move || {
            let _ = loom::time::sleep(Duration::from_millis(20));
            flag.set(true);
        });
        let joiner = loom::spawn(move || {
            let payload = target.join().expect_err("the joiner was cancelled");
            payload.downcast::<io::Error>().unwrap().raw_os_error()
        });
        loom::yield_now();
        joiner.cancel();
        assert_eq!(joiner.join().unwrap(), Some(libc::ECANCELED));
        // The detached target runs on to completion.
        loom::time::sleep(Duration::from_millis(40)).unwrap();
    });
    assert!(target_done.get());
}

#[test]
fn detached_fibers_run_to_completion() {
    let count = Rc::new(Cell::new(0));
    let counter = count.clone();
    runtime().run(move || {
        for _ in 0..10 {
            let counter = counter.clone();
            drop(loom::spawn(move || {
                loom::time::sleep(Duration::from_millis(1)).unwrap();
                counter.set(counter.get() + 1);
            }));
        }
        loom::time::sleep(Duration::from_millis(30)).unwrap();
    });
    assert_eq!(count.get(), 10);
}

#[test]
fn current_fiber_has_an_id_and_a_name() {
    runtime().run(|| {
        let main = loom::fiber::current();
        assert_eq!(main.name(), Some("main"));
        let unnamed = loom::spawn(|| loom::fiber::current().name().map(str::to_owned));
        assert_eq!(unnamed.join().unwrap(), None);
        let named = loom::fiber::Builder::new()
            .name("worker")
            .spawn(loom::fiber::current)
            .unwrap();
        let id = named.fiber().id();
        let seen = named.join().unwrap();
        assert_eq!(seen.name(), Some("worker"));
        assert_eq!(seen.id(), id);
        assert_ne!(seen.id(), main.id());
        let long = "x".repeat(100);
        let truncated = loom::fiber::Builder::new()
            .name(&long)
            .spawn(|| ())
            .unwrap();
        assert_eq!(
            truncated.fiber().name().unwrap().len(),
            loom::fiber::MAX_NAME_BYTES
        );
    });
    assert!(loom::fiber::try_current().is_none());
}

#[test]
fn main_returning_cancels_the_rest_and_they_observe_interrupted() {
    let observed = Rc::new(Cell::new(0));
    let counter = observed.clone();
    let start = Instant::now();
    runtime().run(move || {
        for _ in 0..20 {
            let counter = counter.clone();
            loom::spawn(move || {
                if loom::time::sleep(Duration::from_secs(3600)).is_err() {
                    counter.set(counter.get() + 1);
                }
            });
        }
        loom::yield_now();
    });
    assert_eq!(observed.get(), 20);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "shutdown waited for the sleepers"
    );
}

#[test]
fn a_fiber_ignoring_cancellation_is_abandoned_after_the_grace_period() {
    let rt = loom::Runtime::builder()
        .fibers(4)
        .shutdown_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let start = Instant::now();
    rt.run(|| {
        loom::spawn(|| {
            loop {
                let _ = loom::time::sleep(Duration::from_millis(1));
                loom::yield_now();
            }
        });
        loom::yield_now();
    });
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn a_deadlock_is_broken_by_cancelling_every_fiber() {
    let result = runtime().run(|| {
        // Sleeps "forever" (no timer armed), so nothing can ever wake either fiber.
        let forever = loom::spawn(|| loom::time::sleep(Duration::MAX));
        forever.join()
    });
    let payload = result.expect_err("main's join was interrupted");
    assert_eq!(
        payload.downcast::<io::Error>().unwrap().raw_os_error(),
        Some(libc::ECANCELED)
    );
}

#[test]
fn a_join_handle_may_outlive_its_runtime() {
    let stash: Rc<RefCell<Option<loom::JoinHandle<u32>>>> = Rc::default();
    let slot = stash.clone();
    runtime().run(move || {
        let handle = loom::spawn(|| 41);
        loom::yield_now();
        *slot.borrow_mut() = Some(handle);
    });
    let handle = stash.borrow_mut().take().unwrap();
    assert!(handle.is_finished());
    assert_eq!(handle.join().unwrap() + 1, 42);
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .expect("a string payload")
            .to_string(),
    }
}

#[test]
fn misuse_outside_a_runtime_panics_with_a_helpful_message() {
    let spawn = std::panic::catch_unwind(|| loom::spawn(|| ()));
    let message = panic_message(spawn.expect_err("spawn outside a runtime"));
    assert!(
        message.contains("must be called from a fiber inside a loom runtime"),
        "{message}"
    );
    let nested = std::panic::catch_unwind(|| runtime().run(|| runtime().run(|| ())));
    let message = panic_message(nested.expect_err("nested run"));
    assert!(
        message.contains("cannot be called from inside a loom runtime"),
        "{message}"
    );
    // The thread is usable again afterwards.
    assert_eq!(runtime().run(|| 1), 1);
}

#[test]
fn configuration_errors_are_reported_by_build() {
    let kind = |b: loom::rt::Builder| b.build().unwrap_err().kind();
    assert_eq!(
        kind(loom::Runtime::builder().stack_size(4096)),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(loom::Runtime::builder().max_fibers(0)),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(loom::Runtime::builder().fibers(10).max_fibers(5)),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(loom::Runtime::builder().pin_cpus(&[100_000])),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn fiber_builder_rejects_bad_stacks_and_oversized_results() {
    runtime().run(|| {
        let tiny = loom::fiber::Builder::new().stack_size(1024).spawn(|| ());
        assert_eq!(tiny.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let huge = loom::fiber::Builder::new()
            .stack_size(16 * 1024)
            .spawn(|| [0u8; 16 * 1024]);
        assert_eq!(huge.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let boxed = loom::fiber::Builder::new()
            .stack_size(16 * 1024)
            .spawn(|| vec![7u8; 16 * 1024])
            .unwrap();
        assert_eq!(boxed.join().unwrap()[100], 7);
    });
}

#[cfg(target_os = "linux")]
#[test]
fn pinning_restricts_the_loop_thread_while_it_runs() {
    fn allowed_cpus() -> Vec<usize> {
        // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer and size for the calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        assert_eq!(rc, 0);
        // SAFETY: CPU_ISSET only reads the set.
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    }
    let before = allowed_cpus();
    let cpu = *before.last().unwrap();
    let inside = loom::Runtime::builder()
        .pin_cpus(&[cpu])
        .build()
        .unwrap()
        .run(allowed_cpus);
    assert_eq!(inside, [cpu]);
    assert_eq!(allowed_cpus(), before, "the previous mask is restored");
}
