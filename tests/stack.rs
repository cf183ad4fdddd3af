//! The stack pool: back-pressure at `max_fibers`, growth, size classes.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn spawning_past_max_fibers_waits_for_a_free_stack() {
    const LIMIT: usize = 4; // stacks in use at once, the main fiber's included
    let running = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let finished = Rc::new(Cell::new(0usize));
    let (running2, peak2, finished2) = (running.clone(), peak.clone(), finished.clone());
    let rt = loom::Runtime::builder()
        .fibers(2)
        .max_fibers(LIMIT)
        .build()
        .unwrap();
    rt.run(move || {
        for _ in 0..20 {
            let (running, peak, finished) = (running2.clone(), peak2.clone(), finished2.clone());
            // Detached: a finished fiber's stack goes straight back to the
            // pool, which is what lets the next spawn proceed.
            drop(loom::spawn(move || {
                running.set(running.get() + 1);
                peak.set(peak.get().max(running.get()));
                loom::time::sleep(Duration::from_millis(2)).unwrap();
                running.set(running.get() - 1);
                finished.set(finished.get() + 1);
            }));
        }
        // The last spawn returned, so at most LIMIT - 1 are still running.
        while finished2.get() < 20 {
            loom::time::sleep(Duration::from_millis(1)).unwrap();
        }
    });
    assert_eq!(finished.get(), 20);
    assert_eq!(
        peak.get(),
        LIMIT - 1,
        "the limit was reached but never exceeded"
    );
    assert_eq!(running.get(), 0);
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
            spawner.join().unwrap().unwrap_err().raw_os_error(),
            Some(libc::ECANCELED)
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
