//! `loom::block_on` / `loom::try_block_on`: runtime-agnostic futures on a
//! fiber, woken from the same loop, another loop and plain threads; stale
//! wakers; cancellation and call-tree deadlines; and allocation-free
//! same-loop wake-ups (invariant 3, docs/ARCHITECTURE.md), counted with
//! the per-thread counting allocator.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use futures_core::Stream;
use loom_tests::{CountingAlloc, on_each_backend, thread_allocations};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn runtime(threads: usize) -> loom::Runtime {
    loom::Runtime::builder()
        .threads(threads)
        .fibers(64)
        .build()
        .expect("build a runtime")
}

/// A one-bit event with one waiting task: the smallest runtime-agnostic
/// primitive, and one that allocates nothing per use.
#[derive(Default)]
struct Signal {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.set.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            let old = {
                let mut slot = self.waker.lock().unwrap();
                match &*slot {
                    Some(waker) if waker.will_wake(cx.waker()) => None,
                    _ => slot.replace(cx.waker().clone()),
                }
            };
            drop(old);
            if self.set.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    fn raise(&self) {
        self.set.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Receives the next message of a `futures` mpsc channel.
fn next<T>(rx: &mut futures_channel::mpsc::Receiver<T>) -> impl Future<Output = Option<T>> + '_ {
    poll_fn(move |cx| Pin::new(&mut *rx).poll_next(cx))
}

#[test]
fn ready_futures_return_their_output() {
    on_each_backend(|| {
        assert_eq!(loom::block_on(async { 6 * 7 }), 42);
        assert_eq!(loom::try_block_on(std::future::ready("x")).unwrap(), "x");
        // A future may block the fiber inside its poll: it runs on it.
        let slept = loom::block_on(async {
            loom::time::sleep(Duration::from_millis(1)).unwrap();
            1
        });
        assert_eq!(slept, 1);
        // Nested.
        assert_eq!(loom::block_on(async { loom::block_on(async { 3 }) }), 3);
    });
    // Outside a runtime the thread blocks, and wakers still work.
    let (tx, rx) = futures_channel::oneshot::channel();
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(5));
        tx.send(5u8).unwrap();
    });
    assert_eq!(loom::block_on(rx), Ok(5));
    sender.join().unwrap();
}

#[test]
fn woken_by_another_fiber_on_the_same_loop() {
    on_each_backend(|| {
        for round in 0..50u32 {
            let (tx, rx) = futures_channel::oneshot::channel();
            loom::spawn(move || {
                if round % 2 == 0 {
                    loom::time::sleep(Duration::from_millis(1)).unwrap();
                }
                tx.send(round).unwrap();
            });
            assert_eq!(loom::block_on(rx), Ok(round));
        }
        // Ping-pong between two fibers, both in block_on.
        let (mut to_b, mut from_a) = futures_channel::mpsc::channel::<u32>(1);
        let (mut to_a, mut from_b) = futures_channel::mpsc::channel::<u32>(1);
        let b = loom::spawn(move || {
            while let Some(n) = loom::block_on(next(&mut from_a)) {
                let sent = loom::block_on(poll_fn(|cx| to_a.poll_ready(cx)));
                sent.and_then(|()| to_a.start_send(n + 1)).unwrap();
            }
        });
        for i in 0..1000u32 {
            loom::block_on(poll_fn(|cx| to_b.poll_ready(cx))).unwrap();
            to_b.start_send(i * 2).unwrap();
            assert_eq!(loom::block_on(next(&mut from_b)), Some(i * 2 + 1));
        }
        drop(to_b);
        b.join().unwrap();
    });
}

#[test]
fn woken_from_plain_threads() {
    on_each_backend(|| {
        for round in 0..100u32 {
            let (tx, rx) = futures_channel::oneshot::channel();
            let sender = thread::spawn(move || {
                if round % 10 == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
                tx.send(round).unwrap();
            });
            assert_eq!(loom::block_on(rx), Ok(round));
            // Joined off the loop: a std join would block it.
            loom::unblock(move || sender.join().unwrap()).unwrap();
        }
    });
}

#[test]
fn woken_from_another_loop() {
    runtime(2).run(|| {
        for round in 0..100u32 {
            let (tx, rx) = futures_channel::oneshot::channel();
            let other = loom::spawn_on(1, move || tx.send(round).unwrap());
            assert_eq!(loom::block_on(rx), Ok(round));
            other.join().unwrap();
        }
        // A ping-pong across loops, block_on on both sides.
        let (mut to_1, mut on_1) = futures_channel::mpsc::channel::<u64>(1);
        let (mut to_0, mut on_0) = futures_channel::mpsc::channel::<u64>(1);
        let echo = loom::spawn_on(1, move || {
            let mut seen = 0;
            while let Some(n) = loom::block_on(next(&mut on_1)) {
                loom::block_on(poll_fn(|cx| to_0.poll_ready(cx))).unwrap();
                to_0.start_send(n * 3).unwrap();
                seen += 1;
            }
            seen
        });
        for i in 0..2000u64 {
            loom::block_on(poll_fn(|cx| to_1.poll_ready(cx))).unwrap();
            to_1.start_send(i).unwrap();
            assert_eq!(loom::block_on(next(&mut on_0)), Some(i * 3));
        }
        drop(to_1);
        assert_eq!(loom::block_on(echo).unwrap(), 2000);
    });
}

#[test]
fn async_channel_between_many_fibers_loops_and_threads() {
    const FIBERS: usize = 1000;
    const PER_FIBER: u64 = 5;
    let fibers = loom_tests::fibers_within_budget("async_channel", FIBERS / 2) * 2;
    loom::Runtime::builder()
        .threads(2)
        .fibers(64)
        .build()
        .unwrap()
        .run(move || {
            let (work_tx, work_rx) = async_channel::bounded::<u64>(16);
            let (done_tx, done_rx) = async_channel::unbounded::<u64>();
            // Half the consumers on each loop, all parked on one channel.
            let mut handles = Vec::new();
            for i in 0..fibers {
                let work_rx = work_rx.clone();
                let done_tx = done_tx.clone();
                let consume = move || {
                    let mut sum = 0;
                    for _ in 0..PER_FIBER {
                        sum += loom::block_on(work_rx.recv()).unwrap();
                    }
                    loom::block_on(done_tx.send(sum)).unwrap();
                };
                if i % 2 == 0 {
                    handles.push(loom::spawn_on(1, consume));
                } else {
                    loom::spawn(consume);
                }
            }
            drop(done_tx);
            // Producers: a plain thread (blocking on the bounded channel,
            // so it wakes fibers and is woken by them) and a fiber.
            let total = fibers as u64 * PER_FIBER;
            let from_thread = total / 2;
            let thread_tx = work_tx.clone();
            let producer = thread::spawn(move || {
                for v in 1..=from_thread {
                    thread_tx.send_blocking(v).unwrap();
                }
            });
            for v in from_thread + 1..=total {
                loom::block_on(work_tx.send(v)).unwrap();
            }
            let mut sum = 0;
            while let Ok(part) = loom::block_on(done_rx.recv()) {
                sum += part;
            }
            assert_eq!(sum, total * (total + 1) / 2);
            loom::unblock(move || producer.join().unwrap()).unwrap();
            for h in handles {
                h.join().unwrap();
            }
        });
}

#[test]
fn event_listener_notified_from_a_thread() {
    use event_listener::{Event, Listener};
    on_each_backend(|| {
        let event = Arc::new(Event::new());
        let flag = Arc::new(AtomicU32::new(0));
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let event = Arc::clone(&event);
                let flag = Arc::clone(&flag);
                loom::spawn(move || {
                    loop {
                        let seen = flag.load(Ordering::Acquire);
                        if seen != 0 {
                            return seen;
                        }
                        let listener = event.listen();
                        if flag.load(Ordering::Acquire) != 0 {
                            continue;
                        }
                        // `EventListener` is itself a Future.
                        loom::block_on(listener);
                    }
                })
            })
            .collect();
        loom::yield_now();
        let notifier = {
            let event = Arc::clone(&event);
            let flag = Arc::clone(&flag);
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(2));
                flag.store(9, Ordering::Release);
                event.notify(usize::MAX);
            })
        };
        for w in waiters {
            assert_eq!(w.join().unwrap(), 9);
        }
        loom::unblock(move || notifier.join().unwrap()).unwrap();
        // The blocking form of the same listener still works on a thread.
        let listener = event.listen();
        let event2 = Arc::clone(&event);
        let t = thread::spawn(move || event2.notify(1));
        listener.wait();
        loom::unblock(move || t.join().unwrap()).unwrap();
    });
}

/// A future that wakes itself and returns `Pending` `times` times.
struct Yields {
    left: u32,
    polls: Rc<Cell<u32>>,
}

impl Future for Yields {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.polls.set(self.polls.get() + 1);
        if self.left == 0 {
            return Poll::Ready(self.polls.get());
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_future_that_yields_lets_the_other_fibers_run() {
    on_each_backend(|| {
        let ticks = Rc::new(Cell::new(0u32));
        let ticker = {
            let ticks = Rc::clone(&ticks);
            loom::spawn(move || {
                for _ in 0..100 {
                    ticks.set(ticks.get() + 1);
                    loom::yield_now();
                }
            })
        };
        let polls = Rc::new(Cell::new(0));
        let total = loom::block_on(Yields {
            left: 50,
            polls: Rc::clone(&polls),
        });
        assert_eq!(total, 51);
        // Each yield let the ticker run once.
        assert!(
            ticks.get() >= 50,
            "the other fiber ran {} times",
            ticks.get()
        );
        ticker.join().unwrap();
    });
}

/// Where a future leaves its waker for whoever will wake it.
type WakerSlot = Arc<Mutex<Option<Waker>>>;

/// Counts its polls; ready once `open` is set, woken through `slot`.
struct Gate {
    open: Arc<AtomicBool>,
    polls: Arc<AtomicUsize>,
    slot: WakerSlot,
}

impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.open.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn gate() -> (Gate, Arc<AtomicBool>, Arc<AtomicUsize>, WakerSlot) {
    let open = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let slot = Arc::new(Mutex::new(None));
    let gate = Gate {
        open: Arc::clone(&open),
        polls: Arc::clone(&polls),
        slot: Arc::clone(&slot),
    };
    (gate, open, polls, slot)
}

#[test]
fn a_stale_waker_wakes_nothing() {
    let stale: Arc<Mutex<Vec<Waker>>> = Arc::default();
    let kept = Arc::clone(&stale);
    on_each_backend(move || {
        let stale = Arc::clone(&kept);
        // Fiber A: its block_on keeps a clone of its waker, then returns.
        let a = loom::spawn({
            let stale = Arc::clone(&stale);
            move || {
                let (gate, open, _, slot) = gate();
                let opener = loom::spawn(move || {
                    open.store(true, Ordering::SeqCst);
                    let waker = slot.lock().unwrap().take().unwrap();
                    stale.lock().unwrap().push(waker.clone());
                    waker.wake();
                });
                loom::block_on(gate);
                opener.join().unwrap();
            }
        });
        a.join().unwrap();
        // Its fiber is gone; its stack slot goes to the next spawn (the
        // pool's free list is LIFO). Fiber B parks in block_on there.
        let (gate_b, open_b, polls_b, slot_b) = gate();
        let b = loom::spawn(move || loom::block_on(gate_b));
        loom::yield_now();
        assert_eq!(polls_b.load(Ordering::SeqCst), 1);
        // Stale wake-ups: from this loop, and from a plain thread.
        let waker = stale.lock().unwrap().last().unwrap().clone();
        waker.wake_by_ref();
        let from_thread = waker.clone();
        thread::spawn(move || from_thread.wake()).join().unwrap();
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        assert_eq!(
            polls_b.load(Ordering::SeqCst),
            1,
            "a stale waker woke a fiber"
        );
        assert!(!b.is_finished());
        // B's own waker works.
        open_b.store(true, Ordering::SeqCst);
        slot_b.lock().unwrap().take().unwrap().wake();
        b.join().unwrap();
        assert_eq!(polls_b.load(Ordering::SeqCst), 2);
    });
    // After every runtime is gone, too.
    for waker in stale.lock().unwrap().drain(..) {
        waker.wake_by_ref();
        thread::spawn(move || waker.wake()).join().unwrap();
    }
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn try_block_on_returns_ecanceled_and_drops_the_future() {
    on_each_backend(|| {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(Arc::clone(&dropped));
        let (tx, rx) = futures_channel::oneshot::channel::<u8>();
        let waiter = loom::spawn(move || {
            let _flag = &flag;
            loom::try_block_on(async move {
                let flag = flag;
                let got = rx.await;
                drop(flag);
                got
            })
        });
        loom::yield_now();
        assert!(!dropped.load(Ordering::SeqCst));
        waiter.cancel();
        let error = waiter.join().unwrap().unwrap_err();
        assert!(loom::fiber::is_cancelled(&error), "{error}");
        assert!(dropped.load(Ordering::SeqCst), "the future was not dropped");
        // The sender sees the receiver gone.
        assert!(tx.send(1).is_err());
    });
}

#[test]
fn try_block_on_refuses_a_cancelled_fiber_without_polling() {
    on_each_backend(|| {
        let polled = Rc::new(Cell::new(false));
        let seen = Rc::clone(&polled);
        let fiber = loom::spawn(move || {
            loom::try_block_on(async move {
                seen.set(true);
            })
        });
        fiber.cancel(); // before it first runs
        let error = fiber.join().unwrap().unwrap_err();
        assert!(loom::fiber::is_cancelled(&error));
        assert!(!polled.get());
    });
}

#[test]
fn block_on_ignores_cancellation() {
    on_each_backend(|| {
        let (tx, rx) = futures_channel::oneshot::channel();
        let waiter = loom::spawn(move || {
            let got = loom::block_on(rx);
            // Cancellation is sticky: the next blocking call reports it.
            let next = loom::time::sleep(Duration::from_millis(1));
            (got, next)
        });
        loom::yield_now();
        waiter.cancel();
        loom::time::sleep(Duration::from_millis(2)).unwrap();
        assert!(!waiter.is_finished(), "block_on gave up on cancellation");
        tx.send(7u8).unwrap();
        let (got, next) = waiter.join().unwrap();
        assert_eq!(got, Ok(7));
        assert!(loom::fiber::is_cancelled(&next.unwrap_err()));
    });
}

/// Cancellation racing a wake-up from another thread: whichever wins, the
/// fiber leaves only after the wake-up's message (which lives in its
/// frame) was delivered — run under many interleavings.
#[test]
fn cancellation_racing_a_cross_thread_wake() {
    on_each_backend(|| {
        let mut outcomes = [0u32; 2];
        for round in 0..300u32 {
            let (gate, open, _, slot) = gate();
            let waiter = loom::spawn(move || loom::try_block_on(gate));
            loom::yield_now();
            let waker = slot.lock().unwrap().take().unwrap();
            let spin = round % 7;
            let waking = thread::spawn(move || {
                for _ in 0..spin * 50 {
                    std::hint::spin_loop();
                }
                open.store(true, Ordering::SeqCst);
                waker.wake();
            });
            if round % 3 != 0 {
                loom::yield_now();
            }
            waiter.cancel();
            match waiter.join().unwrap() {
                Ok(()) => outcomes[0] += 1,
                Err(e) => {
                    assert!(loom::fiber::is_cancelled(&e), "{e}");
                    outcomes[1] += 1;
                }
            }
            loom::unblock(move || waking.join().unwrap()).unwrap();
        }
        assert_eq!(outcomes.iter().sum::<u32>(), 300);
    });
}

#[test]
fn a_panicking_future_unwinds_through_block_on() {
    on_each_backend(|| {
        let caught = std::panic::catch_unwind(|| {
            loom::block_on(async {
                loom::yield_now();
                panic!("boom from a future");
            })
        });
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom from a future"));
        // The fiber goes on, and block_on still works.
        assert_eq!(loom::block_on(async { 1 }), 1);
    });
}

#[test]
fn the_call_tree_deadline_bounds_try_block_on() {
    on_each_backend(|| {
        let start = Instant::now();
        let timed = loom::time::with_timeout(Duration::from_millis(20), || {
            loom::try_block_on(std::future::pending::<()>())
        });
        assert_eq!(timed.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        // Past the deadline a future that is ready still completes.
        let past = Instant::now() - Duration::from_millis(1);
        let ready = loom::time::with_deadline(past, || loom::try_block_on(async { 4 }));
        assert_eq!(ready.unwrap(), 4);
        // A yielding future is cut off too.
        let polls = Rc::new(Cell::new(0));
        let cut = loom::time::with_timeout(Duration::from_millis(5), || {
            loom::try_block_on(Yields {
                left: u32::MAX,
                polls: Rc::clone(&polls),
            })
        });
        assert_eq!(cut.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    });
}

#[test]
fn a_send_join_handle_is_a_future() {
    runtime(2).run(|| {
        let handle = loom::spawn_on(1, || {
            loom::time::sleep(Duration::from_millis(2)).unwrap();
            loom::rt::loop_index()
        });
        assert_eq!(loom::block_on(handle).unwrap(), 1);
        // Already finished when first polled.
        let handle = loom::spawn_on(1, || 5);
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        assert_eq!(loom::block_on(handle).unwrap(), 5);
        // A panic's payload comes back as with join.
        let handle = loom::spawn_on(1, || panic!("fiber panic"));
        let payload = loom::block_on(handle).unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"fiber panic"));
    });
}

/// Allocations made by this thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = thread_allocations();
    f();
    thread_allocations() - before
}

#[test]
fn same_loop_wakes_do_not_allocate() {
    let counts = on_each_backend(|| {
        let ping = Rc::new(Signal::default());
        let pong = Rc::new(Signal::default());
        let rounds = |n: u32, ping: &Rc<Signal>, pong: &Rc<Signal>| {
            let (ping2, pong2) = (Rc::clone(ping), Rc::clone(pong));
            let other = loom::spawn(move || {
                for _ in 0..n {
                    loom::block_on(ping2.wait());
                    pong2.raise();
                }
            });
            for _ in 0..n {
                ping.raise();
                loom::block_on(pong.wait());
            }
            other.join().unwrap();
        };
        rounds(100, &ping, &pong);
        let polls = Rc::new(Cell::new(0));
        let yields = || {
            polls.set(0);
            loom::block_on(Yields {
                left: 100,
                polls: Rc::clone(&polls),
            })
        };
        yields();
        let (ping_a, pong_a) = (Rc::clone(&ping), Rc::clone(&pong));
        let pingpong = allocations_during(move || rounds(10_000, &ping_a, &pong_a));
        let ready = allocations_during(|| {
            for i in 0..10_000u32 {
                assert_eq!(loom::block_on(std::future::ready(i)), i);
                assert_eq!(loom::try_block_on(async { i }).unwrap(), i);
            }
        });
        let yielding = allocations_during(|| {
            for _ in 0..100 {
                yields();
            }
        });
        (pingpong, ready, yielding)
    });
    for (pingpong, ready, yielding) in counts {
        assert_eq!(pingpong, 0, "same-loop block_on ping-pong allocated");
        assert_eq!(ready, 0, "block_on(ready) allocated");
        assert_eq!(yielding, 0, "a self-waking future allocated");
    }
}

#[test]
fn cross_thread_wakes_almost_never_allocate_on_the_waiting_loop() {
    let allocations = runtime(1).run(|| {
        let ping = Arc::new(Signal::default());
        let pong = Arc::new(Signal::default());
        let (ping2, pong2) = (Arc::clone(&ping), Arc::clone(&pong));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        // The other side is a plain thread, blocking in block_on itself.
        let echo = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                loom::block_on(ping2.wait());
                pong2.raise();
            }
        });
        let round = || {
            ping.raise();
            loom::block_on(pong.wait());
        };
        for _ in 0..100 {
            round();
        }
        let allocations = allocations_during(|| {
            for _ in 0..2_000 {
                round();
            }
        });
        stop.store(true, Ordering::SeqCst);
        ping.raise();
        loom::unblock(move || echo.join().unwrap()).unwrap();
        allocations
    });
    // A wake cell goes back to the free list of the thread that drops its
    // last reference; when the waking thread drops it last (a matter of
    // timing), the loop's next block_on takes a fresh one. Only same-loop
    // wakes are promised to allocate nothing; here, almost never.
    assert!(
        allocations <= 2_000 / 100,
        "cross-thread block_on wake-ups allocated {allocations} times in 2000 rounds"
    );
}
