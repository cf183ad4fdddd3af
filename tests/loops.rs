//! Several loops in one runtime: spawn_on, broadcast and joins across
//! loops, wake-ups of parked loops, pinning and shutdown.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loom_tests::on_each_backend_with;

fn two_loops(b: loom::rt::Builder) -> loom::rt::Builder {
    b.threads(2).fibers(64)
}

#[test]
fn main_runs_on_loop_zero_and_broadcast_reaches_every_loop_on_its_own_thread() {
    on_each_backend_with(two_loops, || {
        assert_eq!(loom::rt::loop_index(), 0);
        assert_eq!(loom::rt::loop_count(), 2);
        let seen: Vec<(usize, std::thread::ThreadId)> =
            loom::broadcast(|| (loom::rt::loop_index(), std::thread::current().id()))
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect();
        assert_eq!(seen[0].0, 0);
        assert_eq!(seen[1].0, 1);
        assert_eq!(seen[0].1, std::thread::current().id());
        assert_ne!(seen[0].1, seen[1].1);
    });
}

#[test]
fn handles_join_from_any_loop_and_from_plain_threads() {
    on_each_backend_with(two_loops, || {
        // A job on loop 0, joined by a fiber on loop 1.
        let on_zero = loom::spawn_on(0, || {
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            loom::rt::loop_index() + 40
        });
        let via_one = loom::spawn_on(1, move || on_zero.join().unwrap() + 2);
        assert_eq!(via_one.join().unwrap(), 42);
        // A job on loop 1, joined from a blocking-pool thread (no runtime).
        let on_one = loom::spawn_on(1, || 7);
        let joined = loom::unblock(move || on_one.join().unwrap()).unwrap();
        assert_eq!(joined, 7);
    });
}

#[test]
fn a_parked_loop_wakes_for_work_at_once() {
    on_each_backend_with(two_loops, || {
        for _ in 0..200 {
            // Loop 1 has nothing to do between rounds, so it sleeps in the
            // kernel; each spawn_on must interrupt that wait.
            loom::time::sleep(Duration::from_micros(200)).unwrap();
            let start = Instant::now();
            assert_eq!(loom::spawn_on(1, || 1).join().unwrap(), 1);
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "took {:?}",
                start.elapsed()
            );
        }
    });
}

#[test]
fn many_cross_loop_spawns_all_run_once() {
    on_each_backend_with(two_loops, || {
        let count = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2000)
            .map(|i| {
                let count = Arc::clone(&count);
                loom::spawn_on(i % 2, move || count.fetch_add(i, Ordering::Relaxed))
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(count.load(Ordering::Relaxed), (0..2000).sum::<usize>());
    });
}

#[test]
fn panics_and_cancellation_cross_loops() {
    on_each_backend_with(two_loops, || {
        let panicked = loom::spawn_on(1, || -> u32 { panic!("boom on loop 1") });
        let payload = panicked.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom on loop 1"));

        let sleeper = loom::spawn_on(1, || loom::time::sleep(Duration::from_secs(30)));
        loom::time::sleep(Duration::from_millis(20)).unwrap();
        let start = Instant::now();
        sleeper.cancel();
        let slept: io::Result<()> = sleeper.join().unwrap();
        assert!(loom::fiber::is_cancelled(&slept.unwrap_err()));
        assert!(start.elapsed() < Duration::from_secs(5));

        // Cancelled before it even starts: it starts cancelled.
        let early = loom::spawn_on(1, || loom::time::sleep(Duration::from_secs(30)));
        early.cancel();
        assert!(loom::fiber::is_cancelled(
            &early.join().unwrap().unwrap_err()
        ));
    });
}

#[test]
fn spawns_wait_for_a_stack_on_a_full_loop() {
    on_each_backend_with(
        |b| b.threads(2).fibers(2).max_fibers(2),
        || {
            // Fill loop 1's two stacks, then ask for a third fiber there.
            let busy: Vec<_> = (0..2)
                .map(|_| loom::spawn_on(1, || loom::time::sleep(Duration::from_millis(100))))
                .collect();
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            let third = loom::spawn_on(1, || 3);
            assert_eq!(third.join().unwrap(), 3);
            for handle in busy {
                handle.join().unwrap().unwrap();
            }
        },
    );
}

#[test]
fn spawn_on_a_loop_that_does_not_exist_panics_with_the_count() {
    on_each_backend_with(two_loops, || {
        let tried = loom::spawn(|| loom::spawn_on(5, || ()));
        let payload = tried.join().unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("no loop 5") && message.contains("2 loops"),
            "{message}"
        );
    });
}

#[test]
fn returning_from_main_shuts_every_loop_down() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&cancelled);
    let start = Instant::now();
    loom::Runtime::builder()
        .threads(2)
        .build()
        .unwrap()
        .run(move || {
            let forever = loom::spawn_on(1, move || {
                let slept = loom::time::sleep(Duration::from_secs(60));
                seen.store(
                    slept.is_err_and(|e| loom::fiber::is_cancelled(&e)),
                    Ordering::SeqCst,
                );
            });
            drop(forever); // detached: main does not wait for it
            loom::time::sleep(Duration::from_millis(20)).unwrap();
        });
    assert!(
        cancelled.load(Ordering::SeqCst),
        "loop 1's fiber was cancelled"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn threads_are_validated() {
    let kind = |b: loom::rt::Builder| b.build().unwrap_err().kind();
    assert_eq!(
        kind(loom::Runtime::builder().threads(0)),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(loom::Runtime::builder().threads(2).pin_cpus(&[0])),
        io::ErrorKind::InvalidInput
    );
}

#[cfg(target_os = "linux")]
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

#[cfg(target_os = "linux")]
#[test]
fn pinned_loops_each_run_on_their_own_cpu() {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        loom_tests::say(format_args!(
            "pinning two loops skipped: this process may run on {cpus:?} only"
        ));
        return;
    }
    let inside = loom::Runtime::builder()
        .threads(2)
        .pin(true)
        .build()
        .unwrap()
        .run(|| {
            loom::broadcast(allowed_cpus)
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect::<Vec<_>>()
        });
    assert_eq!(inside, [vec![cpus[0]], vec![cpus[1]]]);

    // An explicit list, in reverse.
    let reversed = loom::Runtime::builder()
        .threads(2)
        .pin_cpus(&[cpus[1], cpus[0]])
        .build()
        .unwrap()
        .run(|| {
            loom::broadcast(allowed_cpus)
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect::<Vec<_>>()
        });
    assert_eq!(reversed, [vec![cpus[1]], vec![cpus[0]]]);
    assert_eq!(allowed_cpus(), cpus, "the caller's mask is restored");

    let too_many = loom::Runtime::builder()
        .threads(cpus.len() + 1)
        .pin(true)
        .build()
        .unwrap_err();
    assert_eq!(too_many.kind(), io::ErrorKind::InvalidInput);
}
