//! Locks and counters — Mutex, Condvar, RwLock, Semaphore, WaitGroup,
//! Barrier — in both flavours: on one loop, under contention, across loops,
//! from plain threads, with cancellation and with timeouts.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

use loom::fiber::is_cancelled;
use loom::sync::Flavour;
use loom::sync::flavoured as fl;
use loom_tests::{CountingAlloc, on_each_backend, on_each_backend_with, thread_allocations};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs a test generic over the flavour once per flavour, under the
/// watchdog.
macro_rules! both_flavours {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn local() {
                super::watchdog(super::$name::<loom::sync::Local>);
            }

            #[test]
            fn shared() {
                super::watchdog(super::$name::<loom::sync::Shared>);
            }
        }
    )*};
}

/// No test may hang: one that runs this long aborts the test process.
const LIMIT: Duration = Duration::from_secs(60);

fn watchdog<T>(test: impl FnOnce() -> T) -> T {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let name = thread::current().name().unwrap_or("?").to_owned();
    thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(LIMIT) {
            eprintln!("test {name} still runs after {LIMIT:?}: aborting");
            std::process::abort();
        }
    });
    let result = test();
    // Dropped on a panic too: the watchdog stands down either way.
    drop(done);
    result
}

fn rt() -> loom::Runtime {
    loom::Runtime::builder()
        .fibers(256)
        .build()
        .expect("build a runtime")
}

fn two_loops(b: loom::rt::Builder) -> loom::rt::Builder {
    b.threads(2).fibers(64)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sleep_ms(n: u64) {
    loom::time::sleep(ms(n)).unwrap();
}

#[track_caller]
fn assert_cancelled<T: std::fmt::Debug>(result: io::Result<T>) {
    let err = result.expect_err("the call was cancelled");
    assert!(is_cancelled(&err), "not the cancellation error: {err:?}");
}

#[track_caller]
fn assert_timed_out<T: std::fmt::Debug>(result: io::Result<T>, start: Instant, at_least: Duration) {
    let err = result.expect_err("the call timed out");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err:?}");
    let waited = start.elapsed();
    assert!(waited >= at_least, "gave up early, after {waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "gave up late, after {waited:?}"
    );
}

/// Waits (suspending the fiber) until a plain thread has finished.
fn join_thread<T>(handle: thread::JoinHandle<T>) -> T {
    while !handle.is_finished() {
        sleep_ms(1);
    }
    handle.join().expect("the thread panicked")
}

both_flavours!(
    mutex_basics,
    mutex_counts_under_contention,
    mutex_hands_over_in_arrival_order,
    mutex_cancelled_waiter_passes_the_lock_on,
    mutex_lock_timeout,
    condvar_wakes_waiters,
    condvar_notify_one_wakes_one,
    condvar_wait_timeout,
    condvar_cancelled_waiter,
    rwlock_readers_share_writers_exclude,
    rwlock_writer_is_not_starved,
    rwlock_keeps_its_invariant_under_contention,
    rwlock_cancelled_writer_lets_readers_through,
    semaphore_basics,
    semaphore_bounds_concurrency,
    semaphore_serves_large_requests_in_order,
    semaphore_cancelled_and_timed_out_requests,
    wait_group_basics,
    wait_group_cancel_and_timeout,
    wait_group_releases_waiters_even_if_reused,
    barrier_rounds_have_one_leader,
    barrier_cancelled_waiter_withdraws,
    waiting_does_not_allocate,
);

// ---- all of them ----

/// Contended use of every primitive on one loop, after warm-up, makes no
/// heap allocation (invariant 3, docs/ARCHITECTURE.md): waiters live on the fibers' stacks.
fn waiting_does_not_allocate<F: Flavour>() {
    struct All<F: Flavour> {
        mutex: fl::Mutex<u32, F>,
        condvar: fl::Condvar<F>,
        rwlock: fl::RwLock<u32, F>,
        semaphore: fl::Semaphore<F>,
        group: fl::WaitGroup<F>,
        barrier: fl::Barrier<F>,
    }
    fn round<F: Flavour>(all: &All<F>) {
        {
            let mut value = all.mutex.lock().unwrap();
            loom::yield_now();
            *value += 1;
            all.condvar.notify_all();
        }
        {
            let value = all
                .condvar
                .wait_timeout(all.mutex.lock().unwrap(), ms(1))
                .unwrap();
            drop(value);
        }
        *all.rwlock.write().unwrap() += 1;
        {
            let _value = all.rwlock.read().unwrap();
            loom::yield_now();
        }
        {
            let _permit = all.semaphore.acquire().unwrap();
            loom::yield_now();
        }
        all.group.add(1);
        loom::yield_now();
        all.group.done();
        all.group.wait().unwrap();
        all.barrier.wait().unwrap();
    }
    const FIBERS: usize = 4;
    let allocations = rt().run(|| {
        let all = Rc::new(All::<F> {
            mutex: fl::Mutex::new(0),
            condvar: fl::Condvar::new(),
            rwlock: fl::RwLock::new(0),
            semaphore: fl::Semaphore::new(1),
            group: fl::WaitGroup::new(),
            barrier: fl::Barrier::new(FIBERS),
        });
        let run_rounds = |rounds: usize| {
            let fibers: [_; FIBERS] = std::array::from_fn(|_| {
                let all = all.clone();
                loom::spawn(move || (0..rounds).for_each(|_| round(&all)))
            });
            fibers.into_iter().for_each(|f| f.join().unwrap());
        };
        run_rounds(10);
        let before = thread_allocations();
        run_rounds(200);
        thread_allocations() - before
    });
    assert_eq!(allocations, 0, "waiting allocated");
}

// ---- Send and Sync ----

/// Compiles only if `$t` does not implement `$trait` (the trait-ambiguity
/// trick of the static_assertions crate).
macro_rules! assert_not_impl {
    ($t:ty: $trait:path) => {{
        trait AmbiguousIfImpl<A> {
            fn check() {}
        }
        impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
        impl<T: ?Sized + $trait> AmbiguousIfImpl<u8> for T {}
        <$t as AmbiguousIfImpl<_>>::check();
    }};
}

#[test]
fn shared_flavour_is_send_and_sync_like_std_local_is_neither() {
    use loom::sync::{self, local};
    fn send_sync<T: Send + Sync>() {}
    send_sync::<sync::Mutex<Cell<u32>>>();
    send_sync::<sync::MutexGuard<'static, u32>>();
    send_sync::<sync::Condvar>();
    send_sync::<sync::RwLock<u32>>();
    send_sync::<sync::RwLockReadGuard<'static, u32>>();
    send_sync::<sync::RwLockWriteGuard<'static, u32>>();
    send_sync::<sync::Semaphore>();
    send_sync::<sync::SemaphorePermit<'static>>();
    send_sync::<sync::WaitGroup>();
    send_sync::<sync::Barrier>();
    // A guard hands out `&T`/`&mut T`, so it is only as shareable as `T`.
    assert_not_impl!(sync::MutexGuard<'static, Cell<u32>>: Sync);
    assert_not_impl!(sync::Mutex<Rc<u32>>: Send);
    assert_not_impl!(sync::Mutex<Rc<u32>>: Sync);
    assert_not_impl!(sync::RwLock<Cell<u32>>: Sync);
    assert_not_impl!(local::Mutex<u32>: Send);
    assert_not_impl!(local::Mutex<u32>: Sync);
    assert_not_impl!(local::MutexGuard<'static, u32>: Send);
    assert_not_impl!(local::Condvar: Send);
    assert_not_impl!(local::RwLock<u32>: Sync);
    assert_not_impl!(local::Semaphore: Send);
    assert_not_impl!(local::WaitGroup: Sync);
    assert_not_impl!(local::Barrier: Send);
}

// ---- Mutex ----

fn mutex_basics<F: Flavour>() {
    rt().run(|| {
        let mut mutex = fl::Mutex::<u32, F>::new(1);
        *mutex.get_mut() += 1;
        {
            let mut guard = mutex.lock().unwrap();
            *guard += 1;
            assert!(mutex.try_lock().is_none());
            assert_eq!(format!("{mutex:?}"), "Mutex { data: <locked>, .. }");
            let start = Instant::now();
            assert_timed_out(mutex.lock_timeout(ms(10)), start, ms(10));
        }
        assert_eq!(format!("{mutex:?}"), "Mutex { data: 3, .. }");
        assert_eq!(*mutex.try_lock().unwrap(), 3);
        assert_eq!(mutex.into_inner(), 3);
    });
}

fn mutex_counts_under_contention<F: Flavour>() {
    let total = rt().run(|| {
        let counter = Rc::new(fl::Mutex::<u64, F>::new(0));
        let fibers: Vec<_> = (0..100)
            .map(|_| {
                let counter = counter.clone();
                loom::spawn(move || {
                    for _ in 0..100 {
                        let mut guard = counter.lock().unwrap();
                        let seen = *guard;
                        // Switch while holding it, so the others queue up.
                        loom::yield_now();
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        for fiber in fibers {
            fiber.join().unwrap();
        }
        *counter.lock().unwrap()
    });
    assert_eq!(total, 10_000);
}

fn mutex_hands_over_in_arrival_order<F: Flavour>() {
    let log = rt().run(|| {
        let mutex = Rc::new(fl::Mutex::<Vec<u32>, F>::new(Vec::new()));
        // A fiber that relocks at once after unlocking must not starve
        // the fibers that queued meanwhile.
        let hog = {
            let mutex = mutex.clone();
            loom::spawn(move || {
                for _ in 0..4 {
                    let mut guard = mutex.lock().unwrap();
                    guard.push(0);
                    sleep_ms(1);
                }
            })
        };
        loom::yield_now();
        let waiters: Vec<_> = (1..=3)
            .map(|i| {
                let mutex = mutex.clone();
                loom::spawn(move || mutex.lock().unwrap().push(i))
            })
            .collect();
        hog.join().unwrap();
        waiters.into_iter().for_each(|w| w.join().unwrap());
        mutex.lock().unwrap().clone()
    });
    assert_eq!(log, [0, 1, 2, 3, 0, 0, 0]);
}

fn mutex_cancelled_waiter_passes_the_lock_on<F: Flavour>() {
    rt().run(|| {
        let mutex = Rc::new(fl::Mutex::<u32, F>::new(0));
        let add = |n: u32| {
            let mutex = mutex.clone();
            loom::spawn(move || mutex.lock().map(|mut guard| *guard += n))
        };
        let held = mutex.lock().unwrap();
        let first = add(1);
        let second = add(10);
        sleep_ms(5);
        assert!(!first.is_finished());
        first.cancel();
        assert_cancelled(first.join().unwrap());
        drop(held);
        second.join().unwrap().unwrap();
        assert_eq!(*mutex.lock().unwrap(), 10);

        // Cancelled in the turn the lock was handed to it: it either takes
        // the lock or passes it on, never swallows it.
        let held = mutex.lock().unwrap();
        let first = add(100);
        let second = add(1000);
        loom::yield_now();
        drop(held);
        first.cancel();
        let first_result = first.join().unwrap();
        second.join().unwrap().unwrap();
        let expected = if first_result.is_ok() { 1110 } else { 1010 };
        assert_eq!(*mutex.lock_timeout(ms(1000)).unwrap(), expected);

        // A fiber cancelled before it locks a free mutex still gets it.
        let cancelled = add(5);
        cancelled.cancel();
        cancelled.join().unwrap().unwrap();
    });
}

fn mutex_lock_timeout<F: Flavour>() {
    rt().run(|| {
        let mutex = Rc::new(fl::Mutex::<u32, F>::new(0));
        let held = mutex.lock().unwrap();
        let start = Instant::now();
        let impatient = {
            let mutex = mutex.clone();
            loom::spawn(move || mutex.lock_timeout(ms(20)).map(|_| ()))
        };
        let patient = {
            let mutex = mutex.clone();
            loom::spawn(move || mutex.lock().map(|mut guard| *guard += 1))
        };
        assert_timed_out(impatient.join().unwrap(), start, ms(20));
        drop(held);
        patient.join().unwrap().unwrap();
        assert_eq!(*mutex.lock().unwrap(), 1);
    });
}

#[test]
fn mutex_shared_across_loops() {
    const FIBERS_PER_LOOP: u64 = 4;
    const ADDS_PER_FIBER: u64 = 12_500;
    fn add_from_fibers(counter: &Arc<loom::sync::Mutex<u64>>) {
        let fibers: Vec<_> = (0..FIBERS_PER_LOOP)
            .map(|_| {
                let counter = counter.clone();
                loom::spawn(move || {
                    for _ in 0..ADDS_PER_FIBER {
                        *counter.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        fibers.into_iter().for_each(|f| f.join().unwrap());
    }
    watchdog(|| {
        on_each_backend_with(two_loops, || {
            let counter = Arc::new(loom::sync::Mutex::new(0));
            let remote = {
                let counter = counter.clone();
                loom::spawn_on(1, move || add_from_fibers(&counter))
            };
            add_from_fibers(&counter);
            remote.join().unwrap();
            assert_eq!(
                *counter.lock().unwrap(),
                2 * FIBERS_PER_LOOP * ADDS_PER_FIBER
            );
        })
    });
}

#[test]
fn mutex_waiters_cancelled_across_loops_never_lose_the_lock() {
    watchdog(|| {
        on_each_backend_with(two_loops, || {
            let mutex = Arc::new(loom::sync::Mutex::new(0u32));
            for round in 0..200 {
                let held = mutex.lock().unwrap();
                let waiter = {
                    let mutex = mutex.clone();
                    loom::spawn_on(1, move || mutex.lock().map(|mut guard| *guard += 1))
                };
                if round % 2 == 0 {
                    loom::yield_now();
                }
                // Unlocking and cancelling race on loop 1.
                drop(held);
                waiter.cancel();
                let _ = waiter.join().unwrap();
                let guard = mutex.lock_timeout(Duration::from_secs(5));
                assert!(guard.is_ok(), "round {round}: the lock was lost");
            }
        })
    });
}

#[test]
fn mutex_shared_with_plain_threads() {
    watchdog(|| {
        on_each_backend(|| {
            let counter = Arc::new(loom::sync::Mutex::new(0u64));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let counter = counter.clone();
                    thread::spawn(move || {
                        for _ in 0..5_000 {
                            *counter.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            let fibers: Vec<_> = (0..2)
                .map(|_| {
                    let counter = counter.clone();
                    loom::spawn(move || {
                        for i in 0..5_000 {
                            let mut guard = counter.lock().unwrap();
                            *guard += 1;
                            if i % 100 == 0 {
                                // Threads now wait for a fiber.
                                loom::yield_now();
                            }
                        }
                    })
                })
                .collect();
            fibers.into_iter().for_each(|f| f.join().unwrap());
            threads.into_iter().for_each(join_thread);
            assert_eq!(*counter.lock().unwrap(), 20_000);
        })
    });
}

#[test]
fn mutex_works_without_a_runtime() {
    watchdog(|| {
        let counter = Arc::new(loom::sync::Mutex::new(0u64));
        let held = counter.lock().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                thread::spawn(move || {
                    for _ in 0..2_000 {
                        *counter.lock().unwrap() += 1;
                    }
                    let start = Instant::now();
                    let _ = counter.lock_timeout(ms(1));
                    assert!(start.elapsed() < Duration::from_secs(5));
                })
            })
            .collect();
        thread::sleep(ms(10));
        drop(held);
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*counter.lock().unwrap(), 8_000);
    });
}

// ---- Condvar ----

type Pair<F> = Rc<(fl::Mutex<u32, F>, fl::Condvar<F>)>;

fn pair<F: Flavour>() -> Pair<F> {
    Rc::new((fl::Mutex::new(0), fl::Condvar::new()))
}

fn condvar_wakes_waiters<F: Flavour>() {
    rt().run(|| {
        let pair = pair::<F>();
        let waiters: Vec<_> = (1..=5)
            .map(|i| {
                let pair = pair.clone();
                loom::spawn(move || {
                    let (mutex, condvar) = &*pair;
                    let guard = condvar.wait_while(mutex.lock()?, |value| *value < i)?;
                    Ok::<u32, io::Error>(*guard)
                })
            })
            .collect();
        for _ in 1..=5 {
            sleep_ms(1);
            *pair.0.lock().unwrap() += 1;
            pair.1.notify_all();
        }
        for (i, waiter) in (1..=5).zip(waiters) {
            assert!(waiter.join().unwrap().unwrap() >= i);
        }
    });
}

fn condvar_notify_one_wakes_one<F: Flavour>() {
    rt().run(|| {
        let pair = pair::<F>();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let pair = pair.clone();
                loom::spawn(move || {
                    let (mutex, condvar) = &*pair;
                    let mut guard = condvar.wait(mutex.lock()?)?;
                    *guard += 1;
                    Ok::<(), io::Error>(())
                })
            })
            .collect();
        sleep_ms(2);
        pair.1.notify_one();
        sleep_ms(2);
        assert_eq!(*pair.0.lock().unwrap(), 1);
        pair.1.notify_all();
        for waiter in waiters {
            waiter.join().unwrap().unwrap();
        }
        assert_eq!(*pair.0.lock().unwrap(), 3);
    });
}

fn condvar_wait_timeout<F: Flavour>() {
    rt().run(|| {
        let pair = pair::<F>();
        let (mutex, condvar) = &*pair;
        let start = Instant::now();
        let (guard, timed_out) = condvar.wait_timeout(mutex.lock().unwrap(), ms(20)).unwrap();
        assert!(timed_out);
        assert!(start.elapsed() >= ms(20) && start.elapsed() < Duration::from_secs(5));
        assert!(mutex.try_lock().is_none(), "relocked after the timeout");
        drop(guard);

        let setter = {
            let pair = pair.clone();
            loom::spawn(move || {
                sleep_ms(2);
                *pair.0.lock().unwrap() = 7;
                pair.1.notify_one();
            })
        };
        let (guard, timed_out) = condvar
            .wait_timeout_while(mutex.lock().unwrap(), Duration::from_secs(5), |v| *v != 7)
            .unwrap();
        assert!(!timed_out);
        assert_eq!(*guard, 7);
        drop(guard);
        setter.join().unwrap();

        let (guard, timed_out) = condvar
            .wait_timeout_while(mutex.lock().unwrap(), ms(5), |v| *v != 8)
            .unwrap();
        assert!(timed_out);
        assert_eq!(*guard, 7);
    });
}

fn condvar_cancelled_waiter<F: Flavour>() {
    rt().run(|| {
        let pair = pair::<F>();
        let wait_once = || {
            let pair = pair.clone();
            loom::spawn(move || {
                let (mutex, condvar) = &*pair;
                condvar.wait(mutex.lock()?).map(|mut guard| *guard += 1)
            })
        };
        // Cancelled while waiting: an error, and the mutex is not held.
        let waiter = wait_once();
        sleep_ms(2);
        waiter.cancel();
        assert_cancelled(waiter.join().unwrap());
        assert!(pair.0.try_lock().is_some());

        // Notified, then cancelled while relocking: an error too, and the
        // notification goes on to the next waiter.
        let waiter = wait_once();
        let next = wait_once();
        sleep_ms(2);
        let held = pair.0.lock().unwrap();
        pair.1.notify_one();
        waiter.cancel();
        loom::yield_now();
        drop(held);
        assert_cancelled(waiter.join().unwrap());
        next.join().unwrap().unwrap();
        assert_eq!(*pair.0.try_lock().unwrap(), 1);

        // The condition variable still works.
        let waiter = wait_once();
        sleep_ms(2);
        pair.1.notify_one();
        waiter.join().unwrap().unwrap();
        assert_eq!(*pair.0.lock().unwrap(), 2);
    });
}

#[test]
fn condvar_ping_pong_across_loops() {
    const ROUNDS: u32 = 1_000;
    // Each side waits for its turn: even numbers are loop 0's.
    fn play(pair: &(loom::sync::Mutex<u32>, loom::sync::Condvar), parity: u32) {
        let (mutex, condvar) = pair;
        loop {
            let mut turn = condvar
                .wait_while(mutex.lock().unwrap(), |turn| {
                    *turn % 2 != parity && *turn < ROUNDS
                })
                .unwrap();
            if *turn >= ROUNDS {
                return;
            }
            *turn += 1;
            condvar.notify_all();
        }
    }
    watchdog(|| {
        on_each_backend_with(two_loops, || {
            let pair = Arc::new((loom::sync::Mutex::new(0), loom::sync::Condvar::new()));
            let other = {
                let pair = pair.clone();
                loom::spawn_on(1, move || play(&pair, 1))
            };
            play(&pair, 0);
            other.join().unwrap();
            assert_eq!(*pair.0.lock().unwrap(), ROUNDS);
        })
    });
}

#[test]
fn condvar_between_a_fiber_and_a_plain_thread() {
    watchdog(|| {
        on_each_backend(|| {
            let pair = Arc::new((loom::sync::Mutex::new(0u32), loom::sync::Condvar::new()));
            // The thread waits for the fiber, then the fiber for the thread.
            let thread = {
                let pair = pair.clone();
                thread::spawn(move || {
                    let (mutex, condvar) = &*pair;
                    let mut value = condvar
                        .wait_while(mutex.lock().unwrap(), |v| *v != 1)
                        .unwrap();
                    *value = 2;
                    condvar.notify_all();
                })
            };
            sleep_ms(5);
            let (mutex, condvar) = &*pair;
            *mutex.lock().unwrap() = 1;
            condvar.notify_all();
            let (value, timed_out) = condvar
                .wait_timeout_while(mutex.lock().unwrap(), Duration::from_secs(10), |v| *v != 2)
                .unwrap();
            assert!(!timed_out);
            assert_eq!(*value, 2);
            drop(value);
            join_thread(thread);
        })
    });
}

// ---- RwLock ----

fn rwlock_readers_share_writers_exclude<F: Flavour>() {
    rt().run(|| {
        let lock = Rc::new(fl::RwLock::<u32, F>::new(1));
        let reader = {
            let lock = lock.clone();
            loom::spawn(move || {
                let value = lock.read().unwrap();
                sleep_ms(10);
                *value
            })
        };
        loom::yield_now();
        // Another reader gets in alongside; a writer does not.
        assert_eq!(*lock.try_read().unwrap(), 1);
        assert!(lock.try_write().is_none());
        *lock.write().unwrap() += 1;
        assert_eq!(reader.join().unwrap(), 1);
        assert_eq!(*lock.read().unwrap(), 2);
        let mut lock = Rc::into_inner(lock).unwrap();
        *lock.get_mut() += 1;
        assert_eq!(format!("{lock:?}"), "RwLock { data: 3, .. }");
        assert_eq!(lock.into_inner(), 3);
    });
}

fn rwlock_writer_is_not_starved<F: Flavour>() {
    rt().run(|| {
        let lock = Rc::new(fl::RwLock::<u32, F>::new(0));
        let stop = Rc::new(Cell::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (lock, stop) = (lock.clone(), stop.clone());
                loom::spawn(move || {
                    let mut reads = 0u32;
                    while !stop.get() {
                        let _value = lock.read().unwrap();
                        sleep_ms(1);
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        sleep_ms(5);
        let start = Instant::now();
        let writer = {
            let lock = lock.clone();
            loom::spawn(move || *lock.write().unwrap() = 1)
        };
        loom::yield_now();
        // A queued writer holds back new readers.
        assert!(lock.try_read().is_none());
        writer.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
        stop.set(true);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
        assert_eq!(*lock.read().unwrap(), 1);
    });
}

fn rwlock_keeps_its_invariant_under_contention<F: Flavour>() {
    let (a, b) = rt().run(|| {
        let lock = Rc::new(fl::RwLock::<(u32, u32), F>::new((0, 0)));
        let fibers: Vec<_> = (0..100)
            .map(|i| {
                let lock = lock.clone();
                loom::spawn(move || {
                    for _ in 0..10 {
                        if i % 4 == 0 {
                            let mut pair = lock.write().unwrap();
                            pair.0 += 1;
                            loom::yield_now();
                            pair.1 += 1;
                        } else {
                            let pair = lock.read().unwrap();
                            loom::yield_now();
                            assert_eq!(pair.0, pair.1, "a reader saw a half-done write");
                        }
                    }
                })
            })
            .collect();
        fibers.into_iter().for_each(|f| f.join().unwrap());
        *lock.read().unwrap()
    });
    assert_eq!((a, b), (250, 250));
}

fn rwlock_cancelled_writer_lets_readers_through<F: Flavour>() {
    rt().run(|| {
        let lock = Rc::new(fl::RwLock::<u32, F>::new(0));
        let reading = lock.read().unwrap();
        let writer = {
            let lock = lock.clone();
            loom::spawn(move || lock.write().map(|mut value| *value += 1))
        };
        loom::yield_now();
        let reader = {
            let lock = lock.clone();
            loom::spawn(move || lock.read().map(|value| *value))
        };
        loom::yield_now();
        assert!(!reader.is_finished(), "a reader jumped the queued writer");
        writer.cancel();
        assert_cancelled(writer.join().unwrap());
        // The reader queued behind the writer shares with `reading` now.
        assert_eq!(reader.join().unwrap().unwrap(), 0);
        drop(reading);
        *lock.write().unwrap() += 1;
        assert_eq!(*lock.read().unwrap(), 1);
    });
}

#[test]
fn rwlock_shared_across_loops_and_threads() {
    watchdog(|| {
        on_each_backend_with(two_loops, || {
            let lock = Arc::new(loom::sync::RwLock::new((0u32, 0u32)));
            let write = |lock: &loom::sync::RwLock<(u32, u32)>| {
                let mut pair = lock.write().unwrap();
                pair.0 += 1;
                pair.1 += 1;
            };
            let check = |lock: &loom::sync::RwLock<(u32, u32)>| {
                let pair = lock.read().unwrap();
                assert_eq!(pair.0, pair.1);
            };
            let remote = {
                let lock = lock.clone();
                loom::spawn_on(1, move || {
                    for i in 0..2_000 {
                        if i % 2 == 0 {
                            write(&lock)
                        } else {
                            check(&lock)
                        }
                    }
                })
            };
            let thread = {
                let lock = lock.clone();
                thread::spawn(move || {
                    for i in 0..2_000 {
                        if i % 2 == 0 {
                            write(&lock)
                        } else {
                            check(&lock)
                        }
                    }
                })
            };
            for i in 0..2_000 {
                if i % 2 == 0 {
                    write(&lock)
                } else {
                    check(&lock)
                }
            }
            remote.join().unwrap();
            join_thread(thread);
            assert_eq!(*lock.read().unwrap(), (3_000, 3_000));
        })
    });
}

// ---- Semaphore ----

fn semaphore_basics<F: Flavour>() {
    rt().run(|| {
        let semaphore = fl::Semaphore::<F>::new(3);
        let two = semaphore.acquire_many(2).unwrap();
        assert_eq!(two.num_permits(), 2);
        let one = semaphore.try_acquire().unwrap();
        assert!(semaphore.try_acquire().is_none());
        assert_eq!(semaphore.available_permits(), 0);
        drop(two);
        assert_eq!(semaphore.available_permits(), 2);
        one.forget();
        assert_eq!(semaphore.available_permits(), 2);
        semaphore.add_permits(1);
        let permit = semaphore.acquire().unwrap();
        assert_eq!(
            format!("{semaphore:?}"),
            "Semaphore { available_permits: 2, .. }"
        );
        drop(permit);
        assert_eq!(semaphore.available_permits(), 3);
    });
}

fn semaphore_bounds_concurrency<F: Flavour>() {
    let most = rt().run(|| {
        let semaphore = Rc::new(fl::Semaphore::<F>::new(3));
        let inside = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let fibers: Vec<_> = (0..20)
            .map(|_| {
                let (semaphore, inside, most) = (semaphore.clone(), inside.clone(), most.clone());
                loom::spawn(move || {
                    let _permit = semaphore.acquire().unwrap();
                    inside.set(inside.get() + 1);
                    most.set(most.get().max(inside.get()));
                    sleep_ms(1);
                    inside.set(inside.get() - 1);
                })
            })
            .collect();
        fibers.into_iter().for_each(|f| f.join().unwrap());
        assert_eq!(semaphore.available_permits(), 3);
        most.get()
    });
    assert_eq!(most, 3);
}

fn semaphore_serves_large_requests_in_order<F: Flavour>() {
    rt().run(|| {
        let semaphore = Rc::new(fl::Semaphore::<F>::new(0));
        let log = Rc::new(RefCell::new(Vec::new()));
        let request = |n: usize| {
            let (semaphore, log) = (semaphore.clone(), log.clone());
            loom::spawn(move || {
                let permit = semaphore.acquire_many(n).unwrap();
                log.borrow_mut().push(n);
                sleep_ms(2);
                drop(permit);
            })
        };
        let big = request(3);
        let small = request(1);
        loom::yield_now();
        // One permit would do for the small request, but the big one came
        // first.
        semaphore.add_permits(1);
        sleep_ms(2);
        assert!(log.borrow().is_empty());
        assert!(
            semaphore.try_acquire().is_none(),
            "try_acquire jumped the queue"
        );
        semaphore.add_permits(2);
        big.join().unwrap();
        small.join().unwrap();
        assert_eq!(*log.borrow(), [3, 1]);
        assert_eq!(semaphore.available_permits(), 3);
    });
}

fn semaphore_cancelled_and_timed_out_requests<F: Flavour>() {
    rt().run(|| {
        let semaphore = Rc::new(fl::Semaphore::<F>::new(1));
        let acquire_many = |n: usize| {
            let semaphore = semaphore.clone();
            loom::spawn(move || semaphore.acquire_many(n).map(|permit| permit.num_permits()))
        };
        // A request for two waits at the head; one for one waits behind
        // it although a permit is free.
        let big = acquire_many(2);
        let small = acquire_many(1);
        loom::yield_now();
        assert!(!small.is_finished());
        big.cancel();
        assert_cancelled(big.join().unwrap());
        // Withdrawing the head lets the small request have the free permit.
        assert_eq!(small.join().unwrap().unwrap(), 1);
        assert_eq!(semaphore.available_permits(), 1);

        let held = semaphore.acquire().unwrap();
        let start = Instant::now();
        let impatient = {
            let semaphore = semaphore.clone();
            loom::spawn(move || semaphore.acquire_timeout(ms(20)).map(|_| ()))
        };
        let patient = acquire_many(1);
        assert_timed_out(impatient.join().unwrap(), start, ms(20));
        drop(held);
        assert_eq!(patient.join().unwrap().unwrap(), 1);
        assert_eq!(semaphore.available_permits(), 1);
    });
}

#[test]
fn semaphore_shared_across_loops_and_threads() {
    watchdog(|| {
        on_each_backend_with(two_loops, || {
            let semaphore = Arc::new(loom::sync::Semaphore::new(2));
            let inside = Arc::new(AtomicUsize::new(0));
            let work = {
                let (semaphore, inside) = (semaphore.clone(), inside.clone());
                move || {
                    for _ in 0..500 {
                        let _permit = semaphore.acquire().unwrap();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} holders of 2 permits");
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            };
            let remote = loom::spawn_on(1, work.clone());
            let thread = thread::spawn(work.clone());
            let local = loom::spawn(work);
            local.join().unwrap();
            remote.join().unwrap();
            join_thread(thread);
            assert_eq!(semaphore.available_permits(), 2);
        })
    });
}

// ---- WaitGroup ----

fn wait_group_basics<F: Flavour>() {
    rt().run(|| {
        let group = Rc::new(fl::WaitGroup::<F>::new());
        group.wait().unwrap();
        let finished = Rc::new(Cell::new(0));
        group.add(3);
        for i in 0..3 {
            let (group, finished) = (group.clone(), finished.clone());
            loom::spawn(move || {
                sleep_ms(i);
                finished.set(finished.get() + 1);
                group.done();
            });
        }
        group.wait().unwrap();
        assert_eq!(finished.get(), 3);
    });
}

fn wait_group_cancel_and_timeout<F: Flavour>() {
    rt().run(|| {
        let group = Rc::new(fl::WaitGroup::<F>::new());
        group.add(1);
        let start = Instant::now();
        assert_timed_out(group.wait_timeout(ms(20)), start, ms(20));
        let wait = || {
            let group = group.clone();
            loom::spawn(move || group.wait())
        };
        let cancelled = wait();
        let other = wait();
        sleep_ms(2);
        cancelled.cancel();
        assert_cancelled(cancelled.join().unwrap());
        assert!(!other.is_finished());
        group.done();
        other.join().unwrap().unwrap();
    });
}

fn wait_group_releases_waiters_even_if_reused<F: Flavour>() {
    rt().run(|| {
        let group = Rc::new(fl::WaitGroup::<F>::new());
        group.add(1);
        let waiter = {
            let group = group.clone();
            loom::spawn(move || group.wait())
        };
        loom::yield_now();
        // Zero, then busy again before the waiter runs: it still returns.
        group.done();
        group.add(1);
        waiter.join().unwrap().unwrap();
        group.done();
    });
}

#[test]
#[should_panic(expected = "more often than WaitGroup::add")]
fn wait_group_done_without_add_panics() {
    loom::sync::local::WaitGroup::new().done();
}

#[test]
fn wait_group_shared_across_loops_and_threads() {
    watchdog(|| {
        on_each_backend_with(two_loops, || {
            let group = Arc::new(loom::sync::WaitGroup::new());
            let finished = Arc::new(AtomicUsize::new(0));
            group.add(20);
            for i in 0..20 {
                let (group, finished) = (group.clone(), finished.clone());
                let work = move || {
                    finished.fetch_add(1, Ordering::SeqCst);
                    group.done();
                };
                if i % 2 == 0 {
                    drop(loom::spawn_on(1, work));
                } else {
                    drop(thread::spawn(work));
                }
            }
            group.wait_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(finished.load(Ordering::SeqCst), 20);

            // A plain thread waits for a fiber on the other loop.
            group.add(1);
            let waiter = {
                let group = group.clone();
                thread::spawn(move || group.wait_timeout(Duration::from_secs(10)))
            };
            let group2 = group.clone();
            loom::spawn_on(1, move || {
                sleep_ms(2);
                group2.done();
            })
            .join()
            .unwrap();
            join_thread(waiter).unwrap();
        })
    });
}

// ---- Barrier ----

fn barrier_rounds_have_one_leader<F: Flavour>() {
    rt().run(|| {
        const PARTIES: usize = 4;
        const ROUNDS: usize = 3;
        let barrier = Rc::new(fl::Barrier::<F>::new(PARTIES));
        let arrived = Rc::new(Cell::new(0));
        let fibers: Vec<_> = (0..PARTIES)
            .map(|i| {
                let (barrier, arrived) = (barrier.clone(), arrived.clone());
                loom::spawn(move || {
                    let mut leads = 0;
                    for round in 0..ROUNDS {
                        sleep_ms(i as u64);
                        arrived.set(arrived.get() + 1);
                        leads += usize::from(barrier.wait().unwrap().is_leader());
                        // Nobody passes before everyone of this round came.
                        assert!(arrived.get() >= (round + 1) * PARTIES);
                    }
                    leads
                })
            })
            .collect();
        let leads: usize = fibers.into_iter().map(|f| f.join().unwrap()).sum();
        assert_eq!(leads, ROUNDS);
        assert!(fl::Barrier::<F>::new(0).wait().unwrap().is_leader());
    });
}

fn barrier_cancelled_waiter_withdraws<F: Flavour>() {
    rt().run(|| {
        let barrier = Rc::new(fl::Barrier::<F>::new(3));
        let wait = || {
            let barrier = barrier.clone();
            loom::spawn(move || barrier.wait().map(|r| r.is_leader()))
        };
        let first = wait();
        let cancelled = wait();
        loom::yield_now();
        cancelled.cancel();
        assert_cancelled(cancelled.join().unwrap());
        // Two of three again, not three: nobody may leave yet.
        let second = wait();
        sleep_ms(5);
        assert!(!first.is_finished() && !second.is_finished());
        let third = wait();
        let leaders = [first, second, third]
            .into_iter()
            .map(|f| f.join().unwrap().unwrap())
            .filter(|&leader| leader)
            .count();
        assert_eq!(leaders, 1);
    });
}

#[test]
fn barrier_across_loops_and_threads() {
    watchdog(|| {
        on_each_backend_with(two_loops, || {
            let barrier = Arc::new(loom::sync::Barrier::new(3));
            let passed = Arc::new(AtomicBool::new(false));
            let remote = {
                let barrier = barrier.clone();
                loom::spawn_on(1, move || {
                    (0..50)
                        .filter(|_| barrier.wait().unwrap().is_leader())
                        .count()
                })
            };
            let thread = {
                let (barrier, passed) = (barrier.clone(), passed.clone());
                thread::spawn(move || {
                    let leads = (0..50)
                        .filter(|_| barrier.wait().unwrap().is_leader())
                        .count();
                    passed.store(true, Ordering::SeqCst);
                    leads
                })
            };
            let mine = (0..50)
                .filter(|_| barrier.wait().unwrap().is_leader())
                .count();
            let total = mine + remote.join().unwrap() + join_thread(thread);
            assert_eq!(total, 50);
            assert!(passed.load(Ordering::SeqCst));
        })
    });
}
