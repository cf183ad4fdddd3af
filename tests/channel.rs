//! Channels — mpsc, mpmc, oneshot and `Select` — in both flavours:
//! ordering, disconnection, back-pressure, time limits, cancellation,
//! plain threads, and a million messages between two loops.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loom_tests::runtime;

/// A limit no healthy wait comes near: a lost wake-up fails the test
/// instead of hanging it.
const LONG: Duration = Duration::from_secs(20);

/// Counts its drops, to see which messages a channel dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Lets every other runnable fiber of this loop run until it blocks.
fn settle() {
    for _ in 0..20 {
        loom::yield_now();
    }
}

/// Sum, xor and count of a stream of numbers: what the transfer tests
/// compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    count: u64,
    sum: u64,
    xor: u64,
}

impl Tally {
    fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        self.xor ^= v;
    }

    fn of(values: impl IntoIterator<Item = u64>) -> Tally {
        let mut tally = Tally::default();
        values.into_iter().for_each(|v| tally.add(v));
        tally
    }
}

/// The same tests for both flavours: expanded in `mod local` and `mod
/// shared`, each of which imports its own `mpsc`, `mpmc`, `oneshot` and
/// `Select`.
macro_rules! flavour_tests {
    () => {
        use std::cell::Cell;
        use std::rc::Rc;

        use super::*;

        #[test]
        fn mpsc_delivers_in_fifo_order() {
            runtime().run(|| {
                let (tx, rx) = mpsc::channel(4);
                let producer = loom::spawn(move || {
                    for i in 0..1000u32 {
                        tx.send(i).unwrap();
                    }
                });
                for i in 0..1000 {
                    assert_eq!(rx.recv(), Ok(i));
                }
                assert_eq!(rx.recv(), Err(mpsc::RecvError::Disconnected));
                producer.join().unwrap();

                let (tx, rx) = mpsc::unbounded();
                for i in 0..1000u32 {
                    tx.send(i).unwrap();
                }
                assert_eq!(rx.len(), 1000);
                drop(tx);
                assert!(rx.iter().eq(0..1000));
                assert!(rx.is_empty());
            });
        }

        #[test]
        fn receivers_drain_the_channel_then_see_the_disconnection() {
            runtime().run(|| {
                let (tx, rx) = mpsc::channel(8);
                let tx2 = tx.clone();
                tx.send(1).unwrap();
                tx2.send(2).unwrap();
                drop(tx);
                assert_eq!(rx.try_recv(), Ok(1));
                assert_eq!(rx.try_recv(), Ok(2));
                // One sender is left.
                assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
                drop(tx2);
                assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
                assert_eq!(rx.recv(), Err(mpsc::RecvError::Disconnected));
                assert_eq!(
                    rx.recv_timeout(LONG),
                    Err(mpsc::RecvTimeoutError::Disconnected)
                );

                // A waiting receiver is woken by the last sender's drop.
                let (tx, rx) = mpmc::channel::<u8>(1);
                let waiting: Vec<_> = (0..3)
                    .map(|_| {
                        let rx = rx.clone();
                        loom::spawn(move || rx.recv())
                    })
                    .collect();
                settle();
                tx.send(7).unwrap();
                drop(tx);
                let mut results: Vec<_> = waiting.into_iter().map(|w| w.join().unwrap()).collect();
                results.sort_by_key(|r| r.is_err());
                assert_eq!(results[0], Ok(7));
                assert!(
                    results[1..]
                        .iter()
                        .all(|r| *r == Err(mpmc::RecvError::Disconnected))
                );
            });
        }

        #[test]
        fn senders_fail_once_the_receivers_are_gone() {
            runtime().run(|| {
                let drops = Arc::new(AtomicUsize::new(0));
                let (tx, rx) = mpsc::channel(4);
                for _ in 0..3 {
                    tx.send(Counted(drops.clone())).unwrap();
                }
                drop(rx);
                // The messages nobody can receive are dropped at once.
                assert_eq!(drops.load(Ordering::SeqCst), 3);
                let back = tx.send(Counted(drops.clone())).unwrap_err();
                assert!(matches!(back, mpsc::SendError::Disconnected(_)));
                assert_eq!(drops.load(Ordering::SeqCst), 3);
                drop(back);
                assert_eq!(drops.load(Ordering::SeqCst), 4);
                assert!(matches!(
                    tx.try_send(Counted(drops.clone())),
                    Err(mpsc::TrySendError::Disconnected(_))
                ));

                // A sender waiting for room is woken by the receiver's drop.
                let (tx, rx) = mpsc::channel(1);
                tx.send(1).unwrap();
                let blocked = loom::spawn(move || tx.send(2));
                settle();
                assert!(!blocked.is_finished());
                drop(rx);
                assert_eq!(
                    blocked.join().unwrap(),
                    Err(mpsc::SendError::Disconnected(2))
                );

                // mpmc: disconnected only when the last receiver goes.
                let (tx, rx) = mpmc::channel(2);
                let rx2 = rx.clone();
                drop(rx);
                tx.send(1).unwrap();
                assert_eq!(rx2.recv(), Ok(1));
                drop(rx2);
                assert!(tx.send(2).is_err());
            });
        }

        #[test]
        fn try_and_timeout_variants() {
            runtime().run(|| {
                let (tx, rx) = mpsc::channel(1);
                assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
                tx.try_send(1).unwrap();
                assert!(matches!(tx.try_send(2), Err(mpsc::TrySendError::Full(2))));

                let wait = Duration::from_millis(20);
                let start = Instant::now();
                let err = tx.send_timeout(3, wait).unwrap_err();
                assert!(start.elapsed() >= wait);
                assert!(matches!(err, mpsc::SendTimeoutError::Timeout(3)));
                assert_eq!(io::Error::from(err).kind(), io::ErrorKind::TimedOut);

                assert_eq!(rx.recv_timeout(wait), Ok(1));
                let start = Instant::now();
                assert_eq!(rx.recv_timeout(wait), Err(mpsc::RecvTimeoutError::Timeout));
                assert!(start.elapsed() >= wait);
                assert_eq!(
                    rx.recv_timeout(Duration::ZERO),
                    Err(mpsc::RecvTimeoutError::Timeout)
                );

                // A message arriving within the limit is received.
                let late = loom::spawn(move || {
                    loom::time::sleep(Duration::from_millis(5)).unwrap();
                    tx.send(4).unwrap();
                    tx
                });
                assert_eq!(rx.recv_timeout(LONG), Ok(4));
                let tx = late.join().unwrap();
                // A huge limit is "forever", not an overflow.
                tx.send_timeout(5, Duration::MAX).unwrap();
                assert_eq!(rx.recv_timeout(Duration::MAX), Ok(5));
            });
        }

        #[test]
        fn a_full_channel_holds_its_sender_until_drained() {
            runtime().run(|| {
                let (tx, rx) = mpsc::channel(2);
                let sent = Rc::new(Cell::new(0));
                let progress = sent.clone();
                let producer = loom::spawn(move || {
                    for i in 0..10u32 {
                        tx.send(i).unwrap();
                        progress.set(progress.get() + 1);
                    }
                });
                settle();
                assert_eq!(sent.get(), 2, "the sender waits once the channel is full");
                loom::time::sleep(Duration::from_millis(5)).unwrap();
                assert_eq!(sent.get(), 2);
                assert_eq!(rx.recv(), Ok(0));
                settle();
                assert_eq!(sent.get(), 3, "one slot freed, one more message");
                assert!(rx.iter().eq(1..10));
                producer.join().unwrap();
            });
        }

        #[test]
        fn many_producers_keep_their_own_order() {
            const PRODUCERS: u64 = 8;
            const EACH: u64 = 500;
            runtime().run(|| {
                let (tx, rx) = mpsc::channel(3);
                for p in 0..PRODUCERS {
                    let tx = tx.clone();
                    loom::spawn(move || {
                        for i in 0..EACH {
                            tx.send((p, i)).unwrap();
                        }
                    });
                }
                drop(tx);
                let mut next = [0; PRODUCERS as usize];
                for (p, i) in rx {
                    assert_eq!(next[p as usize], i, "producer {p} out of order");
                    next[p as usize] += 1;
                }
                assert!(next.iter().all(|&n| n == EACH));
            });
        }

        #[test]
        fn mpmc_gives_each_message_to_exactly_one_receiver() {
            const N: u64 = 5000;
            runtime().run(|| {
                let (tx, rx) = mpmc::channel(4);
                let consumers: Vec<_> = (0..4)
                    .map(|_| {
                        let rx = rx.clone();
                        loom::spawn(move || Tally::of(rx.iter()))
                    })
                    .collect();
                drop(rx);
                let producers: Vec<_> = (0..2)
                    .map(|p| {
                        let tx = tx.clone();
                        loom::spawn(move || {
                            for v in (p..N).step_by(2) {
                                tx.send(v).unwrap();
                            }
                        })
                    })
                    .collect();
                drop(tx);
                producers.into_iter().for_each(|p| p.join().unwrap());
                let mut total = Tally::default();
                for c in consumers {
                    let t = c.join().unwrap();
                    total.count += t.count;
                    total.sum += t.sum;
                    total.xor ^= t.xor;
                }
                assert_eq!(total, Tally::of(0..N));
            });
        }

        #[test]
        fn oneshot_sends_once() {
            runtime().run(|| {
                let (tx, rx) = oneshot::channel();
                let sender = loom::spawn(move || tx.send(String::from("reply")));
                assert_eq!(rx.recv().as_deref(), Ok("reply"));
                sender.join().unwrap().unwrap();

                let (tx, rx) = oneshot::channel::<u8>();
                drop(tx);
                assert_eq!(rx.recv(), Err(oneshot::RecvError::Disconnected));

                let (tx, rx) = oneshot::channel();
                drop(rx);
                assert_eq!(tx.send(3), Err(3));

                let (tx, rx) = oneshot::channel();
                assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Empty));
                let wait = Duration::from_millis(5);
                assert_eq!(
                    rx.recv_timeout(wait),
                    Err(oneshot::RecvTimeoutError::Timeout)
                );
                let sender = loom::spawn(move || tx.send(9));
                assert_eq!(rx.recv_timeout(LONG), Ok(9));
                assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Disconnected));
                sender.join().unwrap().unwrap();
            });
        }

        #[test]
        fn select_over_three_channels() {
            runtime().run(|| {
                let (a_tx, a) = mpsc::channel::<u32>(1);
                let (b_tx, b) = mpmc::channel::<&str>(1);
                let (c_tx, c) = oneshot::channel::<u64>();
                let feeder = loom::spawn(move || {
                    for i in 0..5 {
                        a_tx.send(i).unwrap();
                        b_tx.send("b").unwrap();
                    }
                    loom::time::sleep(Duration::from_millis(2)).unwrap();
                    c_tx.send(99).unwrap();
                });
                let mut select = Select::new();
                let ia = select.recv(&a);
                let ib = select.recv(&b);
                let ic = select.recv(&c);
                assert_eq!((ia, ib, ic), (0, 1, 2));
                let (mut got_a, mut got_b, mut got_c) = (Vec::new(), 0, None);
                while got_c.is_none() {
                    let index = select.ready_timeout(LONG).unwrap();
                    match index {
                        0 => match a.try_recv() {
                            Ok(v) => got_a.push(v),
                            Err(mpsc::TryRecvError::Disconnected) => select.remove(0),
                            Err(mpsc::TryRecvError::Empty) => {}
                        },
                        1 => match b.try_recv() {
                            Ok(_) => got_b += 1,
                            Err(mpmc::TryRecvError::Disconnected) => select.remove(1),
                            Err(mpmc::TryRecvError::Empty) => {}
                        },
                        2 => got_c = Some(c.try_recv().unwrap()),
                        _ => unreachable!(),
                    }
                }
                assert_eq!(got_a, [0, 1, 2, 3, 4]);
                assert_eq!(got_b, 5);
                assert_eq!(got_c, Some(99));
                feeder.join().unwrap();
            });
        }

        #[test]
        fn select_reports_disconnection_and_times_out() {
            runtime().run(|| {
                let (a_tx, a) = mpsc::channel::<u32>(1);
                let (b_tx, b) = mpsc::channel::<u32>(1);
                let mut select = Select::new();
                select.recv(&a);
                select.recv(&b);
                let wait = Duration::from_millis(10);
                let start = Instant::now();
                let err = select.ready_timeout(wait).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::TimedOut);
                assert!(start.elapsed() >= wait);

                let dropper = loom::spawn(move || {
                    loom::time::sleep(Duration::from_millis(2)).unwrap();
                    drop(b_tx);
                });
                assert_eq!(select.ready().unwrap(), 1);
                assert_eq!(b.try_recv(), Err(mpsc::TryRecvError::Disconnected));
                // Still ready: a disconnected receiver always is.
                assert_eq!(select.try_ready(), Some(1));
                select.remove(1);
                assert_eq!(select.try_ready(), None);
                a_tx.send(5).unwrap();
                assert_eq!(select.ready().unwrap(), 0);
                assert_eq!(a.try_recv(), Ok(5));
                dropper.join().unwrap();
            });
        }

        #[test]
        fn select_is_fair_between_busy_receivers() {
            runtime().run(|| {
                let (a_tx, a) = mpsc::unbounded();
                let (b_tx, b) = mpsc::unbounded();
                for i in 0..10 {
                    a_tx.send(i).unwrap();
                    b_tx.send(i).unwrap();
                }
                let mut select = Select::new();
                select.recv(&a);
                select.recv(&b);
                let mut picks = [0; 2];
                for _ in 0..10 {
                    let index = select.ready().unwrap();
                    picks[index] += 1;
                    let rx = if index == 0 { &a } else { &b };
                    rx.try_recv().unwrap();
                }
                assert_eq!(picks, [5, 5]);
            });
        }

        #[test]
        fn selects_on_one_mpmc_channel_lose_no_wake_up() {
            runtime().run(|| {
                let (tx, rx) = mpmc::channel::<u32>(4);
                let (_other_tx, other) = mpmc::channel::<u32>(1);
                let waiters: Vec<_> = (0..3)
                    .map(|_| {
                        let rx = rx.clone();
                        let other = other.clone();
                        loom::spawn(move || {
                            let mut select = Select::new();
                            select.recv(&rx);
                            select.recv(&other);
                            loop {
                                assert_eq!(select.ready_timeout(LONG).unwrap(), 0);
                                // Another waiter may have been quicker.
                                if let Ok(v) = rx.try_recv() {
                                    return v;
                                }
                            }
                        })
                    })
                    .collect();
                settle();
                for v in 1..=3 {
                    tx.send(v).unwrap();
                }
                let mut got: Vec<u32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
                got.sort();
                assert_eq!(got, [1, 2, 3]);
            });
        }

        #[test]
        fn a_select_passes_on_the_wake_ups_it_does_not_use() {
            runtime().run(|| {
                let (a_tx, a) = mpmc::channel::<u32>(1);
                let (b_tx, b) = mpmc::channel::<u32>(1);
                let selecting = {
                    let (a, b) = (a.clone(), b.clone());
                    loom::spawn(move || {
                        let mut select = Select::new();
                        select.recv(&a);
                        select.recv(&b);
                        match select.ready().unwrap() {
                            0 => (0, a.try_recv()),
                            index => (index, b.try_recv()),
                        }
                    })
                };
                settle();
                // Waits on `b` behind the select.
                let other = loom::spawn(move || b.recv_timeout(Duration::from_secs(2)));
                settle();
                // Both of the select's waiters are notified before it runs;
                // it uses one and must hand the other to `other`.
                a_tx.send(1).unwrap();
                b_tx.send(2).unwrap();
                assert_eq!(selecting.join().unwrap(), (0, Ok(1)));
                assert_eq!(other.join().unwrap(), Ok(2));
            });
        }

        #[test]
        fn a_cancelled_receiver_returns_cancelled_and_the_channel_still_works() {
            runtime().run(|| {
                let (tx, rx) = mpmc::channel::<u32>(1);
                let rx2 = rx.clone();
                let blocked = loom::spawn(move || rx2.recv());
                settle();
                blocked.cancel();
                let err = blocked.join().unwrap().unwrap_err();
                assert_eq!(err, mpmc::RecvError::Cancelled);
                assert!(loom::fiber::is_cancelled(&io::Error::from(err)));
                // Its waiter is gone from the list: the next one is served.
                let next = loom::spawn(move || rx.recv_timeout(LONG));
                settle();
                tx.send(1).unwrap();
                assert_eq!(next.join().unwrap(), Ok(1));
            });
        }

        #[test]
        fn a_cancelled_receiver_does_not_swallow_a_wake_up() {
            runtime().run(|| {
                for cancel_first in [false, true] {
                    let (tx, rx) = mpmc::channel::<u32>(1);
                    let first = {
                        let rx = rx.clone();
                        loom::spawn(move || rx.recv())
                    };
                    settle();
                    let second = loom::spawn(move || rx.recv_timeout(LONG));
                    settle();
                    // The first waiter is notified and cancelled before it
                    // runs again, in either order.
                    if cancel_first {
                        first.cancel();
                        tx.send(1).unwrap();
                    } else {
                        tx.send(1).unwrap();
                        first.cancel();
                    }
                    drop(tx);
                    let first = first.join().unwrap();
                    let second = second.join().unwrap();
                    let got: Vec<_> = [first.ok(), second.ok()].into_iter().flatten().collect();
                    assert_eq!(got, [1], "first: {first:?}, second: {second:?}");
                }
            });
        }

        #[test]
        fn a_cancelled_sender_gets_its_value_back_and_the_channel_still_works() {
            runtime().run(|| {
                let (tx, rx) = mpsc::channel(1);
                tx.send(0).unwrap();
                let blocked = {
                    let tx = tx.clone();
                    loom::spawn(move || tx.send(1))
                };
                settle();
                blocked.cancel();
                let err = blocked.join().unwrap().unwrap_err();
                assert_eq!(err, mpsc::SendError::Cancelled(1));
                assert!(loom::fiber::is_cancelled(&io::Error::from(err)));

                let next = {
                    let tx = tx.clone();
                    loom::spawn(move || tx.send_timeout(2, LONG))
                };
                settle();
                assert_eq!(rx.recv(), Ok(0));
                assert_eq!(next.join().unwrap(), Ok(()));
                assert_eq!(rx.recv(), Ok(2));

                // Cancelled while notified: the freed slot is not lost.
                tx.send(3).unwrap();
                let first = {
                    let tx = tx.clone();
                    loom::spawn(move || tx.send(4))
                };
                settle();
                let second = {
                    let tx = tx.clone();
                    loom::spawn(move || tx.send_timeout(5, LONG))
                };
                settle();
                assert_eq!(rx.recv(), Ok(3));
                first.cancel();
                // Either the first sender took the freed slot (the
                // notification came first) or it passed it on.
                match first.join().unwrap() {
                    Ok(()) => assert_eq!(rx.recv(), Ok(4)),
                    Err(e) => assert_eq!(e, mpsc::SendError::Cancelled(4)),
                }
                assert_eq!(rx.recv_timeout(LONG), Ok(5));
                assert_eq!(second.join().unwrap(), Ok(()));
            });
        }

        #[test]
        fn a_cancelled_select_returns_cancelled_and_passes_nothing_wrong() {
            runtime().run(|| {
                let (a_tx, a) = mpmc::channel::<u32>(1);
                let (_b_tx, b) = mpsc::channel::<u32>(1);
                let selecting = {
                    let a = a.clone();
                    loom::spawn(move || {
                        let mut select = Select::new();
                        select.recv(&a);
                        select.recv(&b);
                        select.ready()
                    })
                };
                settle();
                selecting.cancel();
                let err = selecting.join().unwrap().unwrap_err();
                assert!(loom::fiber::is_cancelled(&err));
                // Its waiters are gone: a plain receiver gets the message.
                let next = loom::spawn(move || a.recv_timeout(LONG));
                settle();
                a_tx.send(8).unwrap();
                assert_eq!(next.join().unwrap(), Ok(8));
            });
        }
    };
}

mod local {
    use loom::sync::local::{Select, mpmc, mpsc, oneshot};

    flavour_tests!();
}

mod shared {
    use loom::sync::{Select, mpmc, mpsc, oneshot};

    flavour_tests!();
}

#[test]
#[should_panic(expected = "capacity of at least 1")]
fn a_zero_capacity_is_refused() {
    let _ = loom::sync::mpsc::channel::<u8>(0);
}

#[test]
fn errors_convert_to_io_errors() {
    use loom::sync::mpsc::{
        RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
    };

    fn kind(e: impl Into<io::Error>) -> io::ErrorKind {
        e.into().kind()
    }
    assert_eq!(kind(SendError::Disconnected(1)), io::ErrorKind::BrokenPipe);
    assert_eq!(kind(TrySendError::Full(1)), io::ErrorKind::WouldBlock);
    assert_eq!(
        kind(TrySendError::Disconnected(1)),
        io::ErrorKind::BrokenPipe
    );
    assert_eq!(kind(SendTimeoutError::Timeout(1)), io::ErrorKind::TimedOut);
    assert_eq!(kind(RecvError::Disconnected), io::ErrorKind::BrokenPipe);
    assert_eq!(kind(TryRecvError::Empty), io::ErrorKind::WouldBlock);
    assert_eq!(kind(RecvTimeoutError::Timeout), io::ErrorKind::TimedOut);
    assert!(loom::fiber::is_cancelled(&SendError::Cancelled(1).into()));
    assert!(loom::fiber::is_cancelled(
        &SendTimeoutError::Cancelled(1).into()
    ));
    assert!(loom::fiber::is_cancelled(&RecvError::Cancelled.into()));
    assert!(loom::fiber::is_cancelled(
        &RecvTimeoutError::Cancelled.into()
    ));

    // `?` in an io::Result function.
    fn relay(rx: &loom::sync::mpsc::Receiver<u8>) -> io::Result<u8> {
        Ok(rx.try_recv()?)
    }
    let (tx, rx) = loom::sync::mpsc::channel(1);
    assert_eq!(relay(&rx).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    tx.send(3).unwrap();
    assert_eq!(relay(&rx).unwrap(), 3);

    // Debug does not need the value to be Debug; Display reads well.
    struct Opaque;
    assert_eq!(
        format!("{:?}", SendError::Disconnected(Opaque)),
        "Disconnected(..)"
    );
    assert_eq!(
        RecvError::Disconnected.to_string(),
        "receiving on an empty and disconnected channel"
    );
}

#[test]
fn shared_channels_work_between_plain_threads_and_fibers() {
    // Plain threads only, no runtime.
    let (tx, rx) = loom::sync::mpsc::channel(1);
    let producer = std::thread::spawn(move || {
        for i in 0..10_000u64 {
            tx.send(i).unwrap();
        }
    });
    assert_eq!(Tally::of(rx.iter()), Tally::of(0..10_000));
    producer.join().unwrap();
    let (_tx, rx) = loom::sync::mpsc::channel::<u8>(1);
    let wait = Duration::from_millis(10);
    assert_eq!(
        rx.recv_timeout(wait),
        Err(loom::sync::mpsc::RecvTimeoutError::Timeout)
    );

    runtime().run(|| {
        // Thread -> fiber, both ways blocking.
        let (tx, rx) = loom::sync::mpsc::channel(1);
        let producer = std::thread::spawn(move || {
            for i in 0..10_000u64 {
                tx.send(i).unwrap();
            }
        });
        assert_eq!(Tally::of(rx.iter()), Tally::of(0..10_000));
        producer.join().unwrap();

        // Fiber -> thread, with the thread in a select (over an idle
        // channel too) and the fiber waiting for room.
        let (tx, rx) = loom::sync::mpsc::channel(1);
        let (idle_tx, idle) = loom::sync::oneshot::channel::<()>();
        let consumer = std::thread::spawn(move || {
            let mut select = loom::sync::Select::new();
            let data = select.recv(&rx);
            select.recv(&idle);
            let mut tally = Tally::default();
            loop {
                assert_eq!(select.ready_timeout(LONG).unwrap(), data);
                match rx.try_recv() {
                    Ok(v) => tally.add(v),
                    Err(loom::sync::mpsc::TryRecvError::Disconnected) => return tally,
                    Err(loom::sync::mpsc::TryRecvError::Empty) => {}
                }
            }
        });
        for i in 0..10_000u64 {
            tx.send_timeout(i, LONG).unwrap();
        }
        drop(tx);
        let tally = loom::unblock(move || consumer.join().unwrap()).unwrap();
        assert_eq!(tally, Tally::of(0..10_000));
        drop(idle_tx);
    });
}

/// A runtime of two loops.
fn two_loops() -> loom::Runtime {
    loom::Runtime::builder()
        .threads(2)
        .fibers(64)
        .build()
        .expect("build a runtime of two loops")
}

/// THE BIG ONE: a million numbers from four producer fibers on loop 1 to a
/// consumer on loop 0 through one bounded channel, each echoed back to a
/// collector on loop 1 through another. Every number must arrive exactly
/// once in each direction; every wait has a time limit, so a lost wake-up
/// fails the test instead of hanging it.
#[test]
fn a_million_messages_between_two_loops() {
    const N: u64 = 1_000_000;
    const PRODUCERS: u64 = 4;
    let started = Instant::now();
    let (forward, back) = two_loops().run(|| {
        use loom::sync::mpsc::{self, RecvTimeoutError};

        let (tx, rx) = mpsc::channel::<u64>(256);
        let (reply_tx, reply_rx) = mpsc::channel::<u64>(256);
        let collector = loom::spawn_on(1, move || {
            assert_eq!(loom::rt::loop_index(), 1);
            let mut tally = Tally::default();
            loop {
                match reply_rx.recv_timeout(LONG) {
                    Ok(v) => tally.add(v),
                    Err(RecvTimeoutError::Disconnected) => return tally,
                    Err(e) => panic!("collector, after {} replies: {e}", tally.count),
                }
            }
        });
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                loom::spawn_on(1, move || {
                    for v in (p..N).step_by(PRODUCERS as usize) {
                        if let Err(e) = tx.send_timeout(v, LONG) {
                            panic!("producer {p} at {v}: {e}");
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut seen = vec![0u64; N.div_ceil(64) as usize];
        let mut tally = Tally::default();
        loop {
            match rx.recv_timeout(LONG) {
                Ok(v) => {
                    let (word, bit) = ((v / 64) as usize, 1 << (v % 64));
                    assert!(seen[word] & bit == 0, "{v} arrived twice");
                    seen[word] |= bit;
                    tally.add(v);
                    if let Err(e) = reply_tx.send_timeout(v, LONG) {
                        panic!("replying to {v}: {e}");
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("consumer, after {} messages: {e}", tally.count),
            }
        }
        drop(reply_tx);
        for p in producers {
            p.join().expect("producer");
        }
        (tally, collector.join().expect("collector"))
    });
    let expected = Tally::of(0..N);
    assert_eq!(forward, expected, "loop 1 -> loop 0");
    assert_eq!(back, expected, "loop 0 -> loop 1");
    eprintln!(
        "2 x {N} messages between two loops in {:?}",
        started.elapsed()
    );
}

/// mpmc with producers and consumers on both loops, a select fed from the
/// other loop, and a cross-loop cancellation.
#[test]
fn mpmc_select_and_cancellation_across_loops() {
    const N: u64 = 100_000;
    two_loops().run(|| {
        use loom::sync::{Select, mpmc, mpsc};

        let (tx, rx) = mpmc::channel::<u64>(64);
        let consumers: Vec<_> = (0..4)
            .map(|i| {
                let rx = rx.clone();
                loom::spawn_on(i % 2, move || {
                    let mut tally = Tally::default();
                    while let Ok(v) = rx.recv_timeout(LONG) {
                        tally.add(v);
                    }
                    tally
                })
            })
            .collect();
        drop(rx);
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let tx = tx.clone();
                loom::spawn_on(p as usize, move || {
                    for v in (p..N).step_by(2) {
                        tx.send_timeout(v, LONG).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        producers.into_iter().for_each(|p| p.join().unwrap());
        let mut total = Tally::default();
        for c in consumers {
            let t = c.join().unwrap();
            total.count += t.count;
            total.sum += t.sum;
            total.xor ^= t.xor;
        }
        assert_eq!(total, Tally::of(0..N));

        // A select on loop 0 fed by two fibers on loop 1.
        let (a_tx, a) = mpsc::channel::<u64>(8);
        let (b_tx, b) = mpsc::channel::<u64>(8);
        let feeders = [(a_tx, 0u64), (b_tx, 1)].map(|(tx, start)| {
            loom::spawn_on(1, move || {
                for v in (start..20_000).step_by(2) {
                    tx.send_timeout(v, LONG).unwrap();
                }
            })
        });
        let mut select = Select::new();
        select.recv(&a);
        select.recv(&b);
        let mut tally = Tally::default();
        let mut open = 2;
        while open > 0 {
            let index = select.ready_timeout(LONG).unwrap();
            let rx = if index == 0 { &a } else { &b };
            match rx.try_recv() {
                Ok(v) => tally.add(v),
                Err(mpsc::TryRecvError::Disconnected) => {
                    select.remove(index);
                    open -= 1;
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        assert_eq!(tally, Tally::of(0..20_000));
        feeders.into_iter().for_each(|f| f.join().unwrap());

        // A fiber on loop 1 waiting on a channel is cancelled from loop 0.
        let (tx, rx) = mpsc::channel::<u64>(1);
        let waiting = loom::spawn_on(1, move || {
            let first = rx.recv();
            (first, rx)
        });
        loom::time::sleep(Duration::from_millis(20)).unwrap();
        waiting.cancel();
        let (first, rx) = waiting.join().unwrap();
        assert_eq!(first, Err(mpsc::RecvError::Cancelled));
        tx.send(1).unwrap();
        assert_eq!(rx.recv(), Ok(1));
    });
}

/// A waiter whose time runs out just as a fiber on another loop notifies
/// it must hand the notification on: the second receiver still gets the
/// message. Run many times with the send landing around the deadline, for
/// a plain receive and for a select.
#[test]
fn waiters_timing_out_as_they_are_notified_pass_the_wake_up_on() {
    use loom::sync::{Select, mpmc, mpsc};

    const ROUNDS: u32 = 400;
    let (missed, taken_by_first) = two_loops().run(|| {
        let (tx, rx) = mpmc::channel::<u32>(1);
        let release = tx.clone();
        let (go_tx, go) = mpsc::channel::<Instant>(1);
        let sender = loom::spawn_on(1, move || {
            for at in go {
                while Instant::now() < at {
                    std::hint::spin_loop();
                }
                tx.send(1).unwrap();
            }
        });
        let (mut missed, mut taken_by_first) = (0, 0);
        for round in 0..ROUNDS {
            let wait = Duration::from_micros(200 + u64::from(round % 25) * 100);
            let select = round % 2 == 1;
            let first = {
                let rx = rx.clone();
                loom::spawn(move || {
                    if select {
                        let mut s = Select::new();
                        s.recv(&rx);
                        s.ready_timeout(wait).ok().and_then(|_| rx.try_recv().ok())
                    } else {
                        rx.recv_timeout(wait).ok()
                    }
                })
            };
            settle();
            let second = {
                let rx = rx.clone();
                loom::spawn(move || rx.recv_timeout(Duration::from_secs(2)))
            };
            settle();
            // The timer wheel's ticks are 1 ms: aim all over the tick in
            // which the first waiter's time runs out.
            let late = Duration::from_micros(u64::from(round * 37 % 1500));
            go_tx.send(Instant::now() + wait + late).unwrap();
            let first = first.join().unwrap();
            if first.is_some() {
                // The second has nothing to get: give it something.
                taken_by_first += 1;
                release.send(2).unwrap();
            }
            let second = second.join().unwrap();
            match (first, second) {
                (Some(1), Ok(2)) | (None, Ok(1)) => {}
                other => {
                    missed += 1;
                    eprintln!("round {round} (select: {select}): {other:?}");
                }
            }
        }
        drop(go_tx);
        sender.join().unwrap();
        (missed, taken_by_first)
    });
    eprintln!("the first waiter took {taken_by_first} of {ROUNDS} messages");
    assert_eq!(missed, 0);
}
