//! Child program for tests that need a process of their own: a panicking
//! main fiber, a stack overflow, shutdown with blocked fibers (also built
//! with `panic = "abort"`), guard-page exhaustion. Usage:
//! `loom-child <scenario>`.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

fn main() {
    let scenario = std::env::args()
        .nth(1)
        .expect("usage: loom-child <scenario>");
    match scenario.as_str() {
        "panic-main" => panic_main(),
        "overflow" => overflow(),
        "wild-segfault" => wild_segfault(),
        "shutdown" => shutdown(),
        "guard-exhaustion" => guard_exhaustion(),
        other => panic!("unknown scenario {other:?}"),
    }
}

fn panic_main() {
    let rt = loom::Runtime::builder().build().unwrap();
    rt.run(|| {
        let _sleeper = loom::spawn(|| loom::time::sleep(Duration::from_secs(3600)));
        loom::yield_now();
        panic!("boom in main");
    });
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if depth == u64::MAX {
        0
    } else {
        recurse(depth + 1) + frame[3]
    }
}

fn overflow() {
    let rt = loom::Runtime::builder().build().unwrap();
    rt.run(|| {
        let deep = loom::fiber::Builder::new()
            .name("deep")
            .stack_size(32 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = deep.join();
        unreachable!("the overflow aborts the process");
    });
}

fn wild_segfault() {
    let rt = loom::Runtime::builder().build().unwrap();
    rt.run(|| {
        // A fault that is not a guard-page hit must reach the default
        // action (SIGSEGV), not the overflow report.
        let wild = black_box(16usize) as *const u8;
        // SAFETY: deliberately unsound: this scenario exists to fault.
        black_box(unsafe { wild.read_volatile() });
    });
}

/// The main fiber returns while fibers are blocked in every kind of
/// blocking call, plus one that ignores cancellation. Must exit 0 under
/// both panic strategies: shutdown never unwinds a suspended fiber.
fn shutdown() {
    let interrupted = Rc::new(Cell::new(0u32));
    let counter = interrupted.clone();
    let rt = loom::Runtime::builder()
        .fibers(8)
        .max_fibers(8)
        .shutdown_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    rt.run(move || {
        let is_interrupted = |r: &std::io::Result<()>| {
            r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::Interrupted)
        };
        // Ignores cancellation: must be abandoned after the grace period.
        let stubborn = loom::fiber::Builder::new()
            .name("stubborn")
            .spawn(|| {
                loop {
                    let _ = loom::time::sleep(Duration::from_millis(1));
                    loom::yield_now();
                }
            })
            .unwrap();
        let c = counter.clone();
        let _sleeper = loom::spawn(move || {
            if is_interrupted(&loom::time::sleep(Duration::from_secs(3600))) {
                c.set(c.get() + 1);
            }
        });
        let c = counter.clone();
        let _joiner = loom::spawn(move || {
            let payload = stubborn.join().expect_err("stubborn never finishes");
            let error = payload
                .downcast::<std::io::Error>()
                .expect("an io::Error payload");
            if error.kind() == std::io::ErrorKind::Interrupted {
                c.set(c.get() + 1);
            }
        });
        // Fill the pool (8 = main + 3 above + 3 holders + the waiter), so the
        // waiter's spawn has to wait for a stack.
        let _holders: Vec<_> = (0..3)
            .map(|_| loom::spawn(|| loom::time::sleep(Duration::from_secs(3600))))
            .collect();
        let c = counter.clone();
        let _waiter = loom::spawn(move || {
            let spawned = loom::fiber::Builder::new().spawn(|| ());
            if spawned.is_err_and(|e| e.kind() == std::io::ErrorKind::Interrupted) {
                c.set(c.get() + 1);
            }
        });
        loom::yield_now();
    });
    // sleeper, joiner and waiter each saw Interrupted.
    assert_eq!(
        interrupted.get(),
        3,
        "every blocked fiber observed cancellation"
    );
    println!("shutdown ok");
}

/// With mprotect guards, more stacks than `vm.max_map_count` allows must be
/// a clear error naming the sysctl.
fn guard_exhaustion() {
    let max_map_count: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .expect("read vm.max_map_count")
        .trim()
        .parse()
        .unwrap();
    let fibers = max_map_count / 2 + 1000;
    let err = loom::Runtime::builder()
        .fibers(fibers)
        .max_fibers(fibers)
        .stack_size(16 * 1024)
        .build()
        .expect_err("reserving past vm.max_map_count must fail");
    println!("{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
    assert!(err.to_string().contains("vm.max_map_count"), "{err}");
    // The failed reservation was cleaned up: a normal runtime still works.
    let rt = loom::Runtime::builder().fibers(16).build().unwrap();
    assert_eq!(rt.run(|| loom::spawn(|| 5).join().unwrap()), 5);
    println!("guard exhaustion ok");
}
