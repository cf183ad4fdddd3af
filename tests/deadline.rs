//! Call-tree deadlines (`loom::time::with_deadline`): every kind of wait
//! ends at the deadline with `TimedOut`, a call that need not wait still
//! succeeds, nesting takes the earliest and is undone on the way out, and
//! an op under a deadline allocates nothing. Each test runs on every
//! backend.

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loom::net::{TcpListener, TcpStream};
use loom::sync::{Condvar, Mutex, mpsc};
use loom::time::{deadline, with_deadline, with_timeout};
use loom_tests::{CountingAlloc, on_each_backend, thread_allocations};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The deadline most tests set.
const LIMIT: Duration = Duration::from_millis(50);
/// How late a wait may end on a loaded two-CPU VM running tests in
/// parallel; far below any wait that was not cut short (seconds).
const SLACK: Duration = Duration::from_millis(1500);

/// Asserts a wait under a deadline `limit` from `start` ended with
/// `TimedOut`, not before the deadline and not much after it.
#[track_caller]
fn assert_timed_out_at(error: &io::Error, start: Instant, limit: Duration) {
    let elapsed = start.elapsed();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    assert!(elapsed >= limit, "ended early, after {elapsed:?}");
    assert!(elapsed < limit + SLACK, "ended late, after {elapsed:?}");
}

/// A connected pair: (client, server side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

#[test]
fn a_read_with_no_data_times_out_at_the_deadline_and_the_socket_still_works() {
    on_each_backend(|| {
        let (mut client, mut server) = tcp_pair();
        let mut buf = [0u8; 16];
        let start = Instant::now();
        let error = with_timeout(LIMIT, || server.read(&mut buf)).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);
        client.write_all(b"after").unwrap();
        let n = with_timeout(Duration::from_secs(10), || server.read(&mut buf)).unwrap();
        assert_eq!(&buf[..n], b"after");
        server.write_all(b"back").unwrap();
        client.read_exact(&mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], b"back");
    });
}

#[test]
fn the_earlier_of_socket_timeout_and_deadline_decides_the_error() {
    on_each_backend(|| {
        let (_client, mut server) = tcp_pair();
        let mut buf = [0u8; 16];
        let short = Duration::from_millis(30);
        server.set_read_timeout(Some(short)).unwrap();
        let start = Instant::now();
        let error = with_timeout(Duration::from_secs(10), || server.read(&mut buf)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error}");
        assert!(start.elapsed() >= short && start.elapsed() < short + SLACK);

        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let start = Instant::now();
        let error = with_timeout(short, || server.read(&mut buf)).unwrap_err();
        assert_timed_out_at(&error, start, short);
    });
}

#[test]
fn nested_deadlines_take_the_earliest_and_are_restored() {
    on_each_backend(|| {
        assert_eq!(deadline(), None);
        let nap = || loom::time::sleep(Duration::from_secs(10));

        // Inner later than outer: the outer one applies.
        let start = Instant::now();
        let error = with_timeout(LIMIT, || {
            let outer = deadline().unwrap();
            with_timeout(Duration::from_secs(5), || {
                assert_eq!(deadline(), Some(outer));
                nap()
            })
        })
        .unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);

        // Inner earlier: it applies inside, and the outer one after it
        // returns and after it unwinds.
        with_timeout(Duration::from_secs(5), || {
            let outer = deadline().unwrap();
            let start = Instant::now();
            let error = with_timeout(LIMIT, || {
                assert!(deadline().unwrap() < outer);
                nap()
            })
            .unwrap_err();
            assert_timed_out_at(&error, start, LIMIT);
            assert_eq!(deadline(), Some(outer));
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                with_timeout(LIMIT, || panic!("deliberate, to unwind with_timeout"))
            }));
            assert!(unwound.is_err());
            assert_eq!(deadline(), Some(outer));
        });
        assert_eq!(deadline(), None);
    });
}

#[test]
fn a_sleep_past_the_deadline_times_out_at_it_and_one_before_it_does_not() {
    on_each_backend(|| {
        let start = Instant::now();
        let error = with_timeout(LIMIT, || loom::time::sleep(Duration::from_secs(10))).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);
        let until = Instant::now() + Duration::from_secs(10);
        let start = Instant::now();
        let error = with_timeout(LIMIT, || loom::time::sleep_until(until)).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);
        with_timeout(Duration::from_secs(10), || {
            loom::time::sleep(Duration::from_millis(5))
        })
        .unwrap();
        // Ending exactly at the deadline is in time.
        let at = Instant::now() + Duration::from_millis(5);
        with_deadline(at, || loom::time::sleep_until(at)).unwrap();
    });
}

#[test]
fn joining_a_long_fiber_times_out_and_plain_spawns_do_not_inherit() {
    on_each_backend(|| {
        let (release, wait) = mpsc::channel::<()>(1);
        let long = loom::spawn(move || {
            let inherited = deadline();
            let _ = wait.recv();
            inherited
        });
        let start = Instant::now();
        let payload = with_timeout(LIMIT, || long.join()).unwrap_err();
        let error = payload
            .downcast::<io::Error>()
            .expect("an io::Error payload");
        assert_timed_out_at(&error, start, LIMIT);

        // The joined fiber was detached, not stopped; one joined in time
        // reports that it never had a deadline.
        release.send(()).unwrap();
        let (release, wait) = mpsc::channel::<()>(1);
        let short = with_timeout(Duration::from_secs(10), || {
            loom::spawn(move || {
                let _ = wait.recv();
                deadline()
            })
        });
        release.send(()).unwrap();
        let joined = with_timeout(Duration::from_secs(10), || short.join());
        assert_eq!(joined.unwrap(), None);
    });
}

#[test]
fn a_lock_held_by_another_fiber_times_out() {
    on_each_backend(|| {
        let mutex = Arc::new(Mutex::new(0));
        let (release, wait) = mpsc::channel::<()>(1);
        let holder = loom::spawn({
            let mutex = mutex.clone();
            move || {
                let _guard = mutex.lock().unwrap();
                let _ = wait.recv();
            }
        });
        loom::yield_now(); // the holder takes the lock
        let start = Instant::now();
        let error = with_timeout(LIMIT, || mutex.lock().map(drop)).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);
        let error = with_timeout(LIMIT, || {
            mutex.lock_timeout(Duration::from_secs(10)).map(drop)
        })
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        release.send(()).unwrap();
        holder.join().unwrap();
        *with_timeout(LIMIT, || mutex.lock()).unwrap() += 1;
        assert_eq!(*mutex.lock().unwrap(), 1);
    });
}

#[test]
fn channel_recv_on_empty_and_send_on_full_time_out() {
    on_each_backend(|| {
        let (tx, rx) = mpsc::channel::<u32>(1);
        let start = Instant::now();
        let error = with_timeout(LIMIT, || rx.recv()).unwrap_err();
        assert_eq!(error, mpsc::RecvError::Timeout);
        assert_timed_out_at(&io::Error::from(error), start, LIMIT);

        tx.send(1).unwrap();
        let start = Instant::now();
        let error = with_timeout(LIMIT, || tx.send(2)).unwrap_err();
        assert_eq!(error, mpsc::SendError::Timeout(2));
        assert_timed_out_at(&io::Error::from(error), start, LIMIT);

        // A longer limit of the call's own gives its own error, at the
        // call tree's deadline.
        let start = Instant::now();
        let error =
            with_timeout(LIMIT, || tx.send_timeout(3, Duration::from_secs(10))).unwrap_err();
        assert!(matches!(error, mpsc::SendTimeoutError::Timeout(3)));
        assert_timed_out_at(&io::Error::from(error), start, LIMIT);

        // The channel is unharmed: the one message is there, then room.
        assert_eq!(rx.recv(), Ok(1));
        tx.send(4).unwrap();
        assert_eq!(rx.try_recv(), Ok(4));

        let (_keep, empty) = loom::sync::oneshot::channel::<u32>();
        let error = with_timeout(LIMIT, || empty.recv()).unwrap_err();
        assert_eq!(error, loom::sync::oneshot::RecvError::Timeout);
    });
}

#[test]
fn a_condvar_wait_times_out_without_the_mutex() {
    on_each_backend(|| {
        let mutex = Mutex::new(false);
        let condvar = Condvar::new();
        let start = Instant::now();
        let error = with_timeout(LIMIT, || condvar.wait(mutex.lock()?).map(drop)).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);
        assert!(mutex.try_lock().is_some(), "the mutex is not held");

        // Its own, earlier limit is reported as before: relocked, `true`.
        let (guard, timed_out) = with_timeout(Duration::from_secs(10), || {
            condvar.wait_timeout(mutex.lock().unwrap(), Duration::from_millis(5))
        })
        .unwrap();
        assert!(timed_out);
        drop(guard);

        // A notification in time is no timeout.
        let pair = Rc::new((
            loom::sync::local::Mutex::new(false),
            loom::sync::local::Condvar::new(),
        ));
        let waiter = loom::spawn({
            let pair = pair.clone();
            move || {
                with_timeout(Duration::from_secs(10), || {
                    pair.1.wait_while(pair.0.lock()?, |ready| !*ready).map(drop)
                })
            }
        });
        loom::yield_now();
        *pair.0.lock().unwrap() = true;
        pair.1.notify_all();
        waiter.join().unwrap().unwrap();
    });
}

#[test]
fn other_sync_waits_time_out() {
    use loom::sync::{Barrier, RwLock, Semaphore, WaitGroup};
    on_each_backend(|| {
        let start = Instant::now();
        let permits = Semaphore::new(0);
        let error = with_timeout(LIMIT, || permits.acquire().map(drop)).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);

        let lock = RwLock::new(());
        let reading = lock.read().unwrap();
        let error = with_timeout(LIMIT, || lock.write().map(drop)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(reading);

        let group = WaitGroup::new();
        group.add(1);
        let error = with_timeout(LIMIT, || group.wait()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        group.done();

        // A withdrawn arrival: the barrier still needs two more.
        let barrier = Barrier::new(2);
        let error = with_timeout(LIMIT, || barrier.wait().map(drop)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);

        let (_tx, rx) = mpsc::channel::<()>(1);
        let mut select = loom::sync::Select::new();
        select.recv(&rx);
        let error = with_timeout(LIMIT, || select.ready()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    });
}

#[test]
fn a_child_wait_times_out_and_kill_then_wait_still_works() {
    on_each_backend(|| {
        let mut child = loom::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let start = Instant::now();
        let error = with_timeout(LIMIT, || child.wait()).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);
        assert_eq!(child.try_wait().unwrap(), None, "still running");
        child.kill().unwrap();
        let status = with_timeout(Duration::from_secs(10), || child.wait()).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn a_signal_wait_times_out() {
    on_each_backend(|| {
        let signals = loom::signal::Signals::new(&[libc::SIGUSR2]).unwrap();
        let start = Instant::now();
        let error = with_timeout(LIMIT, || signals.recv()).unwrap_err();
        assert_timed_out_at(&error, start, LIMIT);
    });
}

/// Calls that need not wait succeed under a deadline that has passed.
#[test]
fn calls_that_need_not_wait_succeed_past_the_deadline() {
    on_each_backend(|| {
        let (mut client, mut server) = tcp_pair();
        client.write_all(b"ready").unwrap();
        // Let the bytes cross loopback before the deadline is in the past.
        loom::time::sleep(Duration::from_millis(20)).unwrap();
        let (tx, rx) = mpsc::channel::<u32>(2);
        tx.send(7).unwrap();
        let mutex = Mutex::new(());
        let finished = loom::spawn(|| 9);
        loom::yield_now();
        let past = Instant::now();
        loom::time::sleep(Duration::from_millis(2)).unwrap();
        with_deadline(past, || {
            let mut buf = [0u8; 16];
            assert_eq!(server.read(&mut buf).unwrap(), 5);
            assert_eq!(rx.recv(), Ok(7));
            tx.send(8).unwrap();
            drop(mutex.lock().unwrap());
            assert_eq!(finished.join().unwrap(), 9);
            loom::time::sleep(Duration::ZERO).unwrap();
        });
    });
}

/// A deadline already passed on entry fails every wait at once.
#[test]
fn a_deadline_already_passed_fails_waits_at_once() {
    on_each_backend(|| {
        let (mut client, mut server) = tcp_pair();
        let (_tx, rx) = mpsc::channel::<u32>(1);
        let past = Instant::now();
        loom::time::sleep(Duration::from_millis(2)).unwrap();
        let start = Instant::now();
        with_deadline(past, || {
            let mut buf = [0u8; 16];
            let read = server.read(&mut buf).unwrap_err();
            assert_eq!(read.kind(), io::ErrorKind::TimedOut, "{read}");
            let slept = loom::time::sleep(Duration::from_secs(10)).unwrap_err();
            assert_eq!(slept.kind(), io::ErrorKind::TimedOut);
            assert_eq!(rx.recv(), Err(mpsc::RecvError::Timeout));
            let long = loom::spawn(|| loom::time::sleep(Duration::from_secs(10)));
            assert!(long.join().is_err());
        });
        assert!(start.elapsed() < SLACK, "took {:?}", start.elapsed());
        // The socket still works.
        client.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(server.read(&mut byte).unwrap(), 1);
    });
}

#[test]
fn deadline_reads_the_one_in_force() {
    assert_eq!(deadline(), None, "outside a runtime");
    on_each_backend(|| {
        assert_eq!(deadline(), None);
        let at = Instant::now() + Duration::from_secs(60);
        with_deadline(at, || {
            assert_eq!(deadline(), Some(at));
            assert_eq!(loom::spawn(deadline).join().unwrap(), None);
        });
        assert_eq!(deadline(), None);
        // A timeout too large for Instant sets none of its own.
        with_timeout(Duration::MAX, || assert_eq!(deadline(), None));
    });
}

/// An echo round trip under a deadline, and a read that the deadline cuts
/// short, allocate nothing once warm (invariant 3).
#[test]
fn io_under_a_deadline_does_not_allocate() {
    let counts = on_each_backend(|| {
        let (mut client, mut server) = tcp_pair();
        let echo = loom::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = server.read(&mut buf) {
                server.write_all(&buf[..n]).unwrap();
            }
        });
        let mut buf = [0u8; 32];
        let mut round = |client: &mut TcpStream| {
            with_timeout(Duration::from_secs(10), || {
                client.write_all(&[5u8; 32])?;
                client.read_exact(&mut buf)
            })
            .unwrap();
        };
        let cut_short = |client: &mut TcpStream| {
            let mut byte = [0u8; 1];
            let error =
                with_timeout(Duration::from_millis(2), || client.read(&mut byte)).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        };
        for _ in 0..20 {
            round(&mut client);
        }
        cut_short(&mut client);
        let before = thread_allocations();
        for _ in 0..200 {
            round(&mut client);
        }
        for _ in 0..3 {
            cut_short(&mut client);
        }
        let allocations = thread_allocations() - before;
        drop(client);
        echo.join().unwrap();
        allocations
    });
    assert!(
        counts.iter().all(|&n| n == 0),
        "allocations per backend: {counts:?}"
    );
}
