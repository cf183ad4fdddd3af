//! Zero heap allocations on the data path after warm-up (invariant 3, docs/ARCHITECTURE.md),
//! measured with a per-thread counting allocator. A fiber and its loop run
//! on one thread, so every allocation they make is counted.

use std::time::Duration;

use loom_tests::{CountingAlloc, thread_allocations};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn runtime() -> loom::Runtime {
    loom::Runtime::builder()
        .fibers(256)
        .build()
        .expect("build a runtime")
}

/// Allocations made while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = thread_allocations();
    f();
    thread_allocations() - before
}

#[test]
fn spawn_and_join_do_not_allocate() {
    let allocations = runtime().run(|| {
        for _ in 0..100 {
            loom::spawn(|| 1u64).join().unwrap();
        }
        allocations_during(|| {
            for i in 0..10_000u64 {
                let h = loom::spawn(move || i * 2);
                assert_eq!(h.join().unwrap(), i * 2);
            }
            // Named ones too: the name is copied inline.
            for _ in 0..10 {
                let a = loom::fiber::Builder::new().name("a").spawn(|| 1).unwrap();
                let b = loom::fiber::Builder::new().name("b").spawn(|| 2).unwrap();
                assert_eq!(a.join().unwrap() + b.join().unwrap(), 3);
            }
        })
    });
    assert_eq!(allocations, 0, "spawn+join allocated");
}

#[test]
fn yielding_does_not_allocate() {
    let allocations = runtime().run(|| {
        let spin = || {
            for _ in 0..10_000 {
                loom::yield_now();
            }
        };
        let warm = (loom::spawn(spin), loom::spawn(spin));
        warm.0.join().unwrap();
        warm.1.join().unwrap();
        allocations_during(|| {
            let a = loom::spawn(spin);
            let b = loom::spawn(spin);
            a.join().unwrap();
            b.join().unwrap();
        })
    });
    assert_eq!(allocations, 0, "yield allocated");
}

#[test]
fn sleeping_does_not_allocate() {
    let allocations = runtime().run(|| {
        let nap = || {
            for _ in 0..3 {
                loom::time::sleep(Duration::from_millis(1)).unwrap();
            }
            loom::time::sleep(Duration::ZERO).unwrap();
        };
        loom::spawn(nap).join().unwrap();
        allocations_during(|| {
            // Sleepers on several wheel levels at once, joined in order.
            let mut handles = [const { None }; 64];
            for (i, slot) in handles.iter_mut().enumerate() {
                let ms = 1 + (i as u64 * 7) % 90;
                *slot = Some(loom::spawn(move || {
                    loom::time::sleep(Duration::from_millis(ms))
                }));
            }
            for h in handles.iter_mut() {
                h.take().unwrap().join().unwrap().unwrap();
            }
            nap();
        })
    });
    assert_eq!(allocations, 0, "sleep allocated");
}

#[test]
fn cancellation_does_not_allocate() {
    let allocations = runtime().run(|| {
        let nap = || loom::time::sleep(Duration::from_secs(60));
        let warm = loom::spawn(nap);
        loom::yield_now();
        warm.cancel();
        drop(warm.join());
        allocations_during(|| {
            for _ in 0..100 {
                let h = loom::spawn(nap);
                loom::yield_now();
                h.cancel();
                assert!(h.join().unwrap().is_err());
            }
        })
    });
    assert_eq!(allocations, 0, "cancel allocated");
}

/// A steady-state echo loop over loopback TCP — a server fiber per
/// connection and client fibers, all on this thread — allocates nothing
/// after warm-up, on every backend.
#[test]
fn steady_state_echo_does_not_allocate() {
    use std::io::{Read, Write};
    use std::rc::Rc;

    use loom::net::{TcpListener, TcpStream};

    const CONNECTIONS: usize = 16;
    const WARM_UP: usize = 50;
    const MEASURED: usize = 500;

    let counts = loom_tests::on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        loom::spawn(move || {
            while let Ok((mut stream, _)) = listener.accept() {
                loom::spawn(move || {
                    let mut buf = [0u8; 512];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        // Per-phase barrier: every client finishes warm-up before anyone
        // measures, so connection set-up is not counted.
        let trace = std::env::var_os("LOOM_TRACE_ALLOC").is_some();
        let warmed = Rc::new(std::cell::Cell::new(0usize));
        let measured = Rc::new(std::cell::Cell::new(0u64));
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let warmed = Rc::clone(&warmed);
                let measured = Rc::clone(&measured);
                loom::spawn(move || {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream.set_nodelay(true).unwrap();
                    let message = [7u8; 256];
                    let mut echo = [0u8; 256];
                    let mut round = |stream: &mut TcpStream| {
                        stream.write_all(&message).unwrap();
                        stream.read_exact(&mut echo).unwrap();
                        assert_eq!(echo, message);
                    };
                    for _ in 0..WARM_UP {
                        round(&mut stream);
                    }
                    warmed.set(warmed.get() + 1);
                    while warmed.get() < CONNECTIONS {
                        loom::yield_now();
                    }
                    let before = thread_allocations();
                    loom_tests::trace_allocations(trace);
                    for _ in 0..MEASURED {
                        round(&mut stream);
                    }
                    // Other fibers' allocations would show up here too,
                    // which is what we want: the whole thread must be quiet.
                    measured.set(measured.get().max(thread_allocations() - before));
                    loom_tests::trace_allocations(false);
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        measured.get()
    });
    assert!(
        counts.iter().all(|&n| n == 0),
        "allocations per backend: {counts:?}"
    );
}

/// Bounded-channel traffic between two fibers of one loop — ping-pong,
/// where the receivers wait, and a stream into a small channel, where the
/// sender waits — allocates nothing after warm-up, in both flavours.
#[test]
fn bounded_channel_traffic_does_not_allocate() {
    use loom::sync::{Flavour, mpsc};

    type Pair<F> = (mpsc::Sender<u64, F>, mpsc::Receiver<u64, F>);

    fn traffic<F: Flavour>(ping: Pair<F>, pong: Pair<F>, stream: Pair<F>) -> u64 {
        let (ping_tx, ping_rx) = ping;
        let (pong_tx, pong_rx) = pong;
        let (stream_tx, stream_rx) = stream;
        let echo = loom::spawn(move || {
            while let Ok(v) = ping_rx.recv() {
                pong_tx.send(v + 1).unwrap();
            }
        });
        let producer = loom::spawn(move || {
            // Waits on the full channel after every few messages.
            for v in 0..2_000u64 {
                stream_tx.send(v).unwrap();
            }
        });
        let round = |rounds: std::ops::Range<u64>| {
            for v in rounds {
                ping_tx.send(v).unwrap();
                assert_eq!(pong_rx.recv(), Ok(v + 1));
            }
        };
        round(0..100);
        for v in 0..100 {
            assert_eq!(stream_rx.recv(), Ok(v));
        }
        let allocations = allocations_during(|| {
            round(100..10_000);
            for v in 100..2_000 {
                assert_eq!(stream_rx.recv(), Ok(v));
            }
        });
        drop(ping_tx);
        echo.join().unwrap();
        producer.join().unwrap();
        allocations
    }

    let local = runtime().run(|| {
        use loom::sync::local::mpsc::channel;
        traffic(channel(1), channel(1), channel(4))
    });
    let shared = runtime().run(|| {
        use loom::sync::mpsc::channel;
        traffic(channel(1), channel(1), channel(4))
    });
    assert_eq!(
        (local, shared),
        (0, 0),
        "channel traffic allocated (local, shared)"
    );
}

/// Hand-offs between two loops — channel ping-pong between a fiber on
/// each, and `spawn_on` + `join` from loop 0 onto loop 1 — allocate
/// nothing after warm-up on either loop's thread. (The counter is per
/// thread: loop 1's count is read by fibers running there.)
#[test]
fn cross_loop_hand_off_does_not_allocate() {
    use loom::sync::mpsc::channel;

    let rt = loom::Runtime::builder()
        .threads(2)
        .fibers(256)
        .build()
        .expect("build a runtime");
    let counts = rt.run(|| {
        const WARM_UP: u64 = 1000;
        let (ping_tx, ping_rx) = channel::<u64>(1);
        let (pong_tx, pong_rx) = channel::<u64>(1);
        let echo = loom::spawn_on(1, move || {
            let mut before = None;
            while let Ok(v) = ping_rx.recv() {
                if v == WARM_UP {
                    before = Some(thread_allocations());
                }
                pong_tx.send(v + 1).unwrap();
            }
            thread_allocations() - before.expect("warmed up")
        });
        let round = |rounds: std::ops::Range<u64>| {
            for v in rounds {
                ping_tx.send(v).unwrap();
                assert_eq!(pong_rx.recv(), Ok(v + 1));
            }
        };
        round(0..WARM_UP);
        let channel_here = allocations_during(|| round(WARM_UP..10_000));
        drop(ping_tx);
        let channel_there = echo.join().unwrap();

        for i in 0..WARM_UP {
            assert_eq!(loom::spawn_on(1, move || i).join().unwrap(), i);
        }
        let there_before = loom::spawn_on(1, thread_allocations).join().unwrap();
        let spawn_here = allocations_during(|| {
            for i in 0..10_000u64 {
                assert_eq!(loom::spawn_on(1, move || i * 2).join().unwrap(), i * 2);
            }
        });
        let there_after = loom::spawn_on(1, thread_allocations).join().unwrap();
        [
            channel_here,
            channel_there,
            spawn_here,
            there_after - there_before,
        ]
    });
    assert_eq!(
        counts, [0; 4],
        "cross-loop allocations (channel on loop 0, on loop 1, spawn_on on loop 0, on loop 1)"
    );
}
