//! `loom::rt::metrics`: fibers counted by what they wait for, ops, driver
//! calls, timers, stacks and mail, on each backend, read from a fiber and
//! from another thread; the table and Prometheus forms; and the stall
//! monitor, which names a fiber that blocks its loop and stays quiet for a
//! loop that is busy but yields.

use std::io::{Read, Write};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use loom::rt::{Backend, LoopMetrics, Metrics};
use loom::sync::local;
use loom_tests::on_each_backend;

/// Every log line of this test binary, for the stall tests.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

fn lines_with(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(needle))
        .cloned()
        .collect()
}

fn this_loop() -> LoopMetrics {
    loom::rt::metrics().loops.remove(0)
}

#[test]
fn fibers_are_counted_by_what_they_wait_for() {
    on_each_backend(|| {
        let before = this_loop();
        assert_eq!(before.fibers.live, 1, "just main: {before:?}");
        assert_eq!(before.fibers.runnable, 0);

        let listener = loom::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = loom::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let (tx, rx) = local::mpsc::channel::<u32>(1);
        let _sleeper = loom::spawn(|| loom::time::sleep(Duration::from_secs(30)));
        let receiver = loom::spawn(move || rx.recv());
        let reader = loom::spawn(move || {
            let mut byte = [0u8; 1];
            conn.read_exact(&mut byte)?;
            Ok::<u8, std::io::Error>(byte[0])
        });
        let blocked =
            loom::spawn(|| loom::unblock(|| std::thread::sleep(Duration::from_millis(300))));
        let fresh = loom::spawn(|| ());
        // Main goes behind them: each runs up to its wait, `fresh` to its end.
        loom::yield_now();
        let joiner = loom::spawn(move || fresh.join());
        let now = this_loop();
        let f = &now.fibers;
        assert_eq!(f.live, 6, "{now:?}");
        assert_eq!(f.waiting_timer, 1, "the sleeper: {now:?}");
        assert_eq!(f.waiting_sync, 1, "the receiver: {now:?}");
        assert_eq!(f.waiting_blocking, 1, "the unblock: {now:?}");
        assert_eq!(f.waiting_io, 1, "the reader: {now:?}");
        assert_eq!(
            f.runnable, 1,
            "the joiner, spawned and not yet run: {now:?}"
        );
        assert_eq!(now.ops.in_flight, 1, "{now:?}");
        assert!(now.timers_armed >= 1, "the sleep's timer: {now:?}");
        // `fresh` finished, but its unjoined handle keeps its stack.
        assert_eq!(now.stacks.in_use, 7, "{now:?}");
        assert!(now.stacks.reserved >= 7 && now.stacks.free == now.stacks.reserved - 7);
        assert_eq!(f.spawned - before.fibers.spawned, 6);

        client.write_all(&[7]).unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), 7);
        tx.send(1).unwrap();
        assert_eq!(receiver.join().unwrap().unwrap(), 1);
        joiner.join().unwrap().unwrap();
        blocked.join().unwrap().unwrap();
        let mid = this_loop();
        assert_eq!(
            mid.fibers.waiting_io + mid.fibers.waiting_sync,
            0,
            "{mid:?}"
        );
        assert_eq!(mid.fibers.waiting_blocking, 0, "{mid:?}");
        assert_eq!(mid.fibers.live, 2, "main and the sleeper: {mid:?}");

        // A read whose timeout passes is a cancelled op.
        let (mut a, _b) = loom::net::UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 4];
        let err = a.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        let end = this_loop();
        assert_eq!(end.ops.in_flight, 0, "{end:?}");
        assert!(
            end.ops.cancelled > before.ops.cancelled,
            "the timed-out read: {end:?}"
        );
        assert!(end.ops.submitted >= before.ops.submitted + 5, "{end:?}");
        assert_eq!(end.ops.submitted, end.ops.completed, "{end:?}");
        assert!(end.driver.waits > before.driver.waits, "{end:?}");
        assert!(
            end.driver.completions > before.driver.completions,
            "{end:?}"
        );
        assert!(end.fibers.finished - before.fibers.finished >= 5, "{end:?}");
        assert!(end.fibers.switches > before.fibers.switches + 10, "{end:?}");
        assert!(
            end.mailbox_received > before.mailbox_received,
            "the unblock's hand-back: {end:?}"
        );
        assert_eq!(end.stalls, 0);
    });
}

#[test]
fn another_thread_reads_every_loop() {
    for backend in Backend::available() {
        let rt = loom::Runtime::builder()
            .backend(backend)
            .threads(2)
            .fibers(64)
            .build()
            .unwrap();
        let handle = rt.metrics();
        assert_eq!(handle.snapshot().loops.len(), 2);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watcher = std::thread::spawn(move || {
            started_rx.recv().unwrap();
            // Loop 1 runs 50 sleeping fibers; wait until it says so.
            let until = Instant::now() + Duration::from_secs(10);
            let seen = loop {
                let metrics = handle.snapshot();
                if metrics.loops[1].fibers.waiting_timer == 50 || Instant::now() > until {
                    break metrics;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            done_tx.send(()).unwrap();
            seen
        });
        rt.run(move || {
            let sleepers = loom::rt::spawn_on(1, || {
                let fibers: Vec<_> = (0..50)
                    .map(|_| loom::spawn(|| loom::time::sleep(Duration::from_millis(400))))
                    .collect();
                for fiber in fibers {
                    fiber.join().unwrap().unwrap();
                }
            });
            started_tx.send(()).unwrap();
            while done_rx.try_recv().is_err() {
                loom::time::sleep(Duration::from_millis(2)).unwrap();
            }
            sleepers.join().unwrap();
        });
        let seen = watcher.join().unwrap();
        let loop1 = &seen.loops[1];
        assert_eq!(loop1.fibers.waiting_timer, 50, "[{backend}] {seen:?}");
        assert!(loop1.fibers.live >= 51, "[{backend}] {seen:?}");
        assert!(
            loop1.mailbox_received >= 1,
            "the spawn_on: [{backend}] {seen:?}"
        );
        assert!(loop1.timers_armed >= 1, "[{backend}] {seen:?}");
        assert_eq!(seen.backend, backend);
    }
}

/// The table and the Prometheus text carry every loop's numbers.
#[test]
fn table_and_prometheus_forms() {
    let metrics: Metrics = loom::Runtime::builder()
        .threads(2)
        .fibers(16)
        .build()
        .unwrap()
        .run(|| {
            loom::spawn(|| ()).join().unwrap();
            loom::rt::metrics()
        });
    let table = metrics.to_string();
    for needle in [
        "loop 0",
        "loop 1",
        "fibers live",
        "ops in flight",
        "stacks free",
        "blocking pool:",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from\n{table}");
    }
    let text = metrics.prometheus();
    assert!(text.contains("loom_fibers_live{loop=\"0\"} 1\n"), "{text}");
    assert!(text.contains("loom_fibers_live{loop=\"1\"} 0\n"), "{text}");
    assert!(
        text.contains("loom_fibers{loop=\"0\",state=\"runnable\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("loom_fibers_spawned_total{loop=\"0\"} 2\n"),
        "{text}"
    );
    // Well-formed: every sample's metric has one TYPE line before it.
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(typed.insert(name.to_owned()), "{name} typed twice");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "{name} has no TYPE line before it");
            let value = line.rsplit(' ').next().unwrap();
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        }
    }
}

/// A runtime on `backend` with room for 1000 fibers and more, watched
/// with a stall threshold of `threshold`.
fn thousand_fibers(backend: Backend, threshold: Duration) -> loom::Runtime {
    loom::Runtime::builder()
        .backend(backend)
        .fibers(1024 + 16)
        .stall_threshold(Some(threshold))
        .build()
        .unwrap()
}

/// The case: a fiber that blocks its loop in `std::thread::sleep`
/// among 1000 others is named, with its id, while it blocks and when it
/// yields.
#[test]
fn a_blocking_fiber_is_named() {
    capture_logs();
    for backend in Backend::available() {
        let name = format!("blocker-{backend}");
        let rt = thousand_fibers(backend, Duration::from_millis(100));
        let fiber_name = name.clone();
        let (id, stalls) = rt.run(move || {
            let stop = std::rc::Rc::new(std::cell::Cell::new(false));
            let others: Vec<_> = (0..1000)
                .map(|_| {
                    let stop = stop.clone();
                    loom::spawn(move || {
                        while !stop.get() {
                            loom::time::sleep(Duration::from_millis(1)).unwrap();
                        }
                    })
                })
                .collect();
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            let blocker = loom::fiber::Builder::new()
                .name(&fiber_name)
                .spawn(|| std::thread::sleep(Duration::from_millis(300)))
                .unwrap();
            let id = blocker.fiber().id();
            blocker.join().unwrap();
            // The monitor sees the loop move on within a sampling period.
            loom::time::sleep(Duration::from_millis(100)).unwrap();
            stop.set(true);
            for other in others {
                other.join().unwrap();
            }
            (id, loom::rt::metrics().loops[0].stalls)
        });
        // At least the blocker's: a loaded machine that takes the loop's
        // CPU away for a threshold makes another (unnamed) one.
        assert!(stalls >= 1, "[{backend}]");
        let warned = lines_with(&format!("{name:?}"));
        assert_eq!(
            warned.len(),
            2,
            "[{backend}] a warning and the yield: {warned:?}"
        );
        assert!(
            warned[0].contains("loop 0 stalled") && warned[0].contains(&format!("({id})")),
            "[{backend}] {}",
            warned[0]
        );
        let total: u64 = warned[1]
            .split("after running ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("[{backend}] no total in {}", warned[1]));
        // The monitor samples every 25 ms.
        assert!(
            (250..=450).contains(&total),
            "[{backend}] total {total} ms: {}",
            warned[1]
        );
    }
}

/// 1000 fibers switching as fast as they can for a second: the loop never
/// stays in one fiber, so nothing is reported. (A threshold of 250 ms: a
/// switch comes every few nanoseconds, so any threshold shows it, and the
/// OS taking the CPU away for that long is far less likely than for
/// 100 ms on a loaded test machine.)
#[test]
fn a_busy_loop_that_yields_is_not_a_stall() {
    for backend in Backend::available() {
        let rt = thousand_fibers(backend, Duration::from_millis(250));
        let (stalls, switches) = rt.run(|| {
            let until = Instant::now() + Duration::from_secs(1);
            let fibers: Vec<_> = (0..1000)
                .map(|_| {
                    loom::spawn(move || {
                        while Instant::now() < until {
                            loom::yield_now();
                        }
                    })
                })
                .collect();
            for fiber in fibers {
                fiber.join().unwrap();
            }
            let loop0 = this_loop();
            (loop0.stalls, loop0.fibers.switches)
        });
        assert_eq!(stalls, 0, "[{backend}]");
        assert!(switches > 100_000, "[{backend}] only {switches} switches");
    }
}

#[test]
fn the_monitor_can_be_turned_off() {
    let rt = loom::Runtime::builder()
        .fibers(16)
        .stall_threshold(None)
        .build()
        .unwrap();
    let stalls = rt.run(|| {
        std::thread::sleep(Duration::from_millis(150));
        loom::yield_now();
        this_loop().stalls
    });
    assert_eq!(stalls, 0);
    let zero = loom::Runtime::builder()
        .stall_threshold(Some(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(zero.kind(), std::io::ErrorKind::InvalidInput);
}
