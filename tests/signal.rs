//! `loom::signal`. Signals sent to a whole process run in the child
//! program `loom-signal-child` (a process-directed signal could land on
//! one of libtest's threads here), once per backend; what involves no
//! process-directed signal runs in this process.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libc::SIGURG;
use loom::signal::{SIGINT, SIGTERM, SIGUSR2, Signals};
use loom_tests::{on_each_backend, run_child};

const CHILD: &str = env!("CARGO_BIN_EXE_loom-signal-child");

/// How long a child may take to get ready, and then to finish.
const BOUND: Duration = Duration::from_secs(20);

fn backends() -> Vec<&'static str> {
    loom::rt::Backend::available()
        .into_iter()
        .map(|backend| backend.name())
        .collect()
}

/// What a child printed and how it ended.
struct Finished {
    stdout: String,
    stderr: String,
    status: std::process::ExitStatus,
}

/// Kills the child if the test fails before it ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `scenario` on `backend`, sends `signal` to the child once it
/// printed `ready`, and waits for it to end — each step within [`BOUND`].
fn signal_when_ready(scenario: &str, backend: &str, signal: i32) -> Finished {
    let child = Command::new(CHILD)
        .arg(scenario)
        .env("LOOM_BACKEND", backend)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loom-signal-child");
    let mut child = Reaper(child);
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut stderr = child.0.stderr.take().expect("piped stderr");
    let (lines, ready) = mpsc::channel();
    let out = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the child's stdout");
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let err = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ready.recv_timeout(left) {
            Ok(line) if line.starts_with("ready") => break,
            Ok(_) => {}
            Err(_) => {
                drop(child);
                panic!(
                    "[{backend}] {scenario}: no `ready` within {BOUND:?}; stderr:\n{}",
                    err.join().unwrap()
                );
            }
        }
    }
    let pid = child.0.id() as libc::pid_t;
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our
    // child, which the Reaper has not waited for, so the number is still
    // its own.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill the child");
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("poll the child") {
            break status;
        }
        if sent.elapsed() > BOUND {
            drop(child);
            panic!(
                "[{backend}] {scenario}: still running {BOUND:?} after signal {signal}; stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Finished {
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        status,
    }
}

/// Waits, sleeping, for `handle`'s fiber for at most 10 s, then joins it.
fn join_within<T: 'static>(handle: loom::JoinHandle<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the fiber did not finish in 10 s"
        );
        loom::time::sleep(Duration::from_millis(1)).unwrap();
    }
    handle.join().unwrap()
}

#[test]
fn sigterm_stops_a_runtime_with_1000_parked_readers() {
    for backend in backends() {
        let started = Instant::now();
        let child = signal_when_ready("shutdown", backend, SIGTERM);
        let context = format!(
            "[{backend}] stdout:\n{}stderr:\n{}",
            child.stdout, child.stderr
        );
        assert!(child.status.success(), "{}: {context}", child.status);
        assert!(
            child
                .stdout
                .contains(&format!("shutdown: received signal {SIGTERM}")),
            "{context}"
        );
        assert!(
            child
                .stdout
                .contains("shutdown: 1000 readers cancelled, clean exit"),
            "{context}"
        );
        loom_tests::say(format_args!(
            "signal: [{backend}] SIGTERM shutdown with 1000 parked readers: {:?} from spawn to exit",
            started.elapsed()
        ));
    }
}

#[test]
fn ctrl_c_returns_on_sigint() {
    for backend in backends() {
        let child = signal_when_ready("ctrl-c", backend, SIGINT);
        let context = format!(
            "[{backend}] stdout:\n{}stderr:\n{}",
            child.stdout, child.stderr
        );
        assert!(child.status.success(), "{}: {context}", child.status);
        assert!(child.stdout.contains("ctrl_c returned"), "{context}");
    }
}

#[test]
fn a_signal_sent_while_no_fiber_waits_is_received_later() {
    for backend in backends() {
        let output = run_child(CHILD, "pending", &[("LOOM_BACKEND", backend)]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "[{backend}] {stdout}{stderr}");
        assert!(
            stdout.contains("pending ok"),
            "[{backend}] {stdout}{stderr}"
        );
    }
}

/// SIGUSR1's default action ends the process: a loop thread or a pool
/// worker that took it instead of the `Signals` would kill the child.
#[test]
fn loop_threads_and_pool_workers_never_take_a_signal() {
    for backend in backends() {
        for (scenario, on_loop) in [("no-steal", 0), ("no-steal-loop1", 1)] {
            let output = run_child(CHILD, scenario, &[("LOOM_BACKEND", backend)]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success(),
                "[{backend}] {scenario}: {}: {stdout}{stderr}",
                output.status
            );
            assert!(
                stdout.contains(&format!("no-steal ok: SIGUSR1 received on loop {on_loop}")),
                "[{backend}] {scenario}: {stdout}{stderr}"
            );
        }
    }
}

#[test]
fn signals_that_cannot_be_received_are_invalid_input() {
    let refused = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        0,
        -3,
        1000,
    ];
    for signal in refused {
        let error = loom::signal::block(&[signal]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "block({signal})");
    }
    on_each_backend(move || {
        for signal in refused {
            let error = Signals::new(&[SIGURG, signal]).unwrap_err();
            assert_eq!(
                error.kind(),
                io::ErrorKind::InvalidInput,
                "{signal}: {error}"
            );
        }
        let error = Signals::new(&[]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    });
}

/// One receiver per signal: a second `Signals` for it is refused until the
/// first is dropped. A signal raised by the loop's own thread is received.
#[test]
fn a_signal_has_one_receiver_at_a_time() {
    on_each_backend(|| {
        let first = Signals::new(&[SIGUSR2]).unwrap();
        assert_eq!(first.signals().collect::<Vec<_>>(), [SIGUSR2]);
        let error = Signals::new(&[SIGINT, SIGUSR2]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        // SAFETY: raise(3) has no memory-safety preconditions. It sends to
        // this thread, which blocks SIGUSR2 now: the signal stays pending
        // for the Signals rather than ending the test process.
        assert_eq!(unsafe { libc::raise(SIGUSR2) }, 0);
        let first = Rc::new(first);
        let waiter = {
            let first = Rc::clone(&first);
            loom::spawn(move || first.recv())
        };
        assert_eq!(join_within(waiter).unwrap(), SIGUSR2);
        assert_eq!(first.try_recv().unwrap(), None);
        drop(first);
        let again = Signals::new(&[SIGUSR2]).unwrap();
        drop(again);
    });
}

#[test]
fn cancelling_a_fiber_in_recv_gives_ecanceled() {
    on_each_backend(|| {
        let signals = Rc::new(Signals::new(&[SIGURG]).unwrap());
        let waiter = {
            let signals = Rc::clone(&signals);
            loom::spawn(move || signals.recv())
        };
        loom::yield_now();
        assert!(!waiter.is_finished(), "recv returned with no signal sent");
        waiter.cancel();
        let error = join_within(waiter).unwrap_err();
        assert!(loom::fiber::is_cancelled(&error), "{error}");

        let iterating = {
            let signals = Rc::clone(&signals);
            loom::spawn(move || signals.forever().count())
        };
        loom::yield_now();
        iterating.cancel();
        assert_eq!(join_within(iterating), 0, "forever ends at cancellation");
    });
}
