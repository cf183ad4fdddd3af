//! The stack pool: back-pressure at `max_fibers`, growth, size classes.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn spawning_past_max_fibers_waits_for_a_free_stack() {
    const LIMIT: usize = 4; // includes the main fiber
    let live = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let (live2, peak2) = (live.clone(), peak.clone());
    let rt = loom::Runtime::builder()
        .fibers(2)
        .max_fibers(LIMIT)
        .build()
        .unwrap();
    let finished = rt.run(move || {
        let mut handles = Vec::new();
        for _ in 0..20 {
            let (live, peak) = (live2.clone(), peak2.clone());
            // Each fiber drops its own handle's stack only once joined, so
            // detach them: a finished, detached fiber frees its stack.
            handles.push(loom::spawn(move || {
                live.set(live.get() + 1);
                peak.set(peak.get().max(live.get()));
                loom::time::sleep(Duration::from_millis(2)).unwrap();
                live.set(live.get() - 1);
            }));
            // Keep at most LIMIT - 1 handles: joined handles release stacks.
            if handles.len() == LIMIT - 1 {
                handles.remove(0).join().unwrap();
            }
        }
        handles.into_iter().for_each(|h| h.join().unwrap());
        20
    });
    assert_eq!(finished, 20);
    assert!(
        peak.get() <= LIMIT - 1,
        "peak {} fibers besides main",
        peak.get()
    );
    assert_eq!(live.get(), 0);
}

#[test]
fn a_spawner_at_the_limit_blocks_until_a_detached_fiber_finishes() {
    let rt = loom::Runtime::builder()
        .fibers(2)
        .max_fibers(2)
        .build()
        .unwrap();
    rt.run(|| {
        let start = std::time::Instant::now();
        drop(loom::spawn(|| {
            loom::time::sleep(Duration::from_millis(20)).unwrap()
        }));
        // Both stacks are taken (main + the sleeper): this spawn waits.
        let second = loom::spawn(|| 2);
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "spawn did not wait"
        );
        assert_eq!(second.join().unwrap(), 2);
    });
}

#[test]
fn a_fiber_waiting_for_a_stack_can_be_cancelled() {
    let rt = loom::Runtime::builder()
        .fibers(3)
        .max_fibers(3)
        .build()
        .unwrap();
    rt.run(|| {
        let holder = loom::spawn(|| loom::time::sleep(Duration::from_secs(3600)));
        let spawner = loom::spawn(|| loom::fiber::Builder::new().spawn(|| ()).map(drop));
        loom::time::sleep(Duration::from_millis(2)).unwrap();
        assert!(
            !spawner.is_finished(),
            "the spawner should be waiting for a stack"
        );
        spawner.cancel();
        assert_eq!(
            spawner.join().unwrap().unwrap_err().kind(),
            io::ErrorKind::Interrupted
        );
        holder.cancel();
        assert!(holder.join().unwrap().is_err());
        // The permits all came back: two more fibers fit again.
        let a = loom::spawn(|| 1);
        let b = loom::spawn(|| 2);
        assert_eq!(a.join().unwrap() + b.join().unwrap(), 3);
    });
}

#[test]
fn the_pool_grows_on_demand_up_to_max_fibers() {
    let rt = loom::Runtime::builder()
        .fibers(2)
        .max_fibers(500)
        .build()
        .unwrap();
    assert_eq!(rt.reserved_fibers(), 2);
    let sum = rt.run(|| {
        let handles: Vec<_> = (0..400u32)
            .map(|i| {
                loom::spawn(move || {
                    loom::yield_now();
                    i
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
    });
    assert_eq!(sum, 400 * 399 / 2);
}

#[test]
fn fibers_of_different_stack_sizes_share_a_loop() {
    #[inline(never)]
    fn use_stack(kib: usize) -> u8 {
        let buf = std::hint::black_box([1u8; 1024]);
        if kib <= 1 {
            buf[0]
        } else {
            use_stack(kib - 1).wrapping_add(buf[1])
        }
    }
    // 200 KiB of frames (more in debug builds) need the 1 MiB class; the
    // default 16 KiB class would overflow (tests/process.rs covers that).
    let rt = loom::Runtime::builder()
        .fibers(8)
        .stack_size(16 * 1024)
        .build()
        .unwrap();
    let sums = rt.run(|| {
        let small = loom::spawn(|| use_stack(4));
        let big = loom::fiber::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(|| use_stack(200))
            .unwrap();
        (small.join().unwrap(), big.join().unwrap())
    });
    assert_eq!(sums, (4, 200));
}
