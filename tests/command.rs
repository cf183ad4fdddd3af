//! `loom::process`: children spawned, piped, waited for, killed and
//! cancelled on each I/O backend, with every wait bounded — a watchdog
//! thread aborts the test binary should a loop stop turning.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loom::process::{Command, Stdio};
use loom_tests::{on_each_backend, on_each_backend_with, pattern, raise_fd_limit, say};

/// Aborts the whole test binary if the test holding it runs past `limit`:
/// the last resort when a loop is blocked and no fiber can notice.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(limit: Duration) -> Watchdog {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&done);
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < limit {
                if seen.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            say(format_args!(
                "{test}: still running after {limit:?}; aborting"
            ));
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` on a fiber and fails the test if it takes longer than
/// `limit`, cancelling it first; should the loop itself stop turning, so
/// that no fiber can notice, a [`Watchdog`] aborts the binary a little
/// later.
fn within<T: 'static>(limit: Duration, f: impl FnOnce() -> T + 'static) -> T {
    let _watchdog = Watchdog::new(limit + Duration::from_secs(30));
    let body = loom::spawn(f);
    let deadline = Instant::now() + limit;
    while !body.is_finished() {
        if Instant::now() > deadline {
            body.cancel();
            panic!("did not finish within {limit:?}");
        }
        loom::time::sleep(Duration::from_millis(5)).unwrap();
    }
    body.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn backend() -> loom::rt::Backend {
    loom::rt::backend()
}

#[test]
fn a_hundred_children_echo_through_pipes_while_a_timer_keeps_time() {
    const CHILDREN: usize = 100;
    // Above a pipe's 64 KiB, so writing and reading must overlap.
    const PAYLOAD: usize = 96 * 1024;
    raise_fd_limit();
    on_each_backend_with(
        |b| b.fibers(4 * CHILDREN),
        || {
            within(Duration::from_secs(60), || {
                // Made up front: generating them is slow in a debug build,
                // and would hold the loop as long as a blocking call.
                let payloads: Vec<Rc<Vec<u8>>> = (0..CHILDREN)
                    .map(|i| Rc::new(payload(i, PAYLOAD)))
                    .collect();
                let mut slowest_spawn = Duration::ZERO;
                let start = Instant::now();
                let done = Rc::new(Cell::new(false));
                let ticker = {
                    let done = Rc::clone(&done);
                    loom::spawn(move || {
                        let mut ticks = Ticks::default();
                        while !done.get() {
                            let before = Instant::now();
                            let queued_before = run_queue_wait();
                            loom::time::sleep(TICK).unwrap();
                            let late = before.elapsed().saturating_sub(TICK);
                            let queued = run_queue_wait()
                                .zip(queued_before)
                                .map(|(after, before)| after.saturating_sub(before));
                            ticks.add(late, queued);
                        }
                        ticks
                    })
                };
                let children: Vec<_> = payloads
                    .iter()
                    .enumerate()
                    .map(|(i, payload)| {
                        let payload = Rc::clone(payload);
                        loom::spawn(move || echo_through_cat(i, payload))
                    })
                    .collect();
                for (i, child) in children.into_iter().enumerate() {
                    let (echoed, spawn_took) = child.join().unwrap().unwrap();
                    slowest_spawn = slowest_spawn.max(spawn_took);
                    assert!(echoed == *payloads[i], "child {i} echoed other bytes");
                }
                let elapsed = start.elapsed();
                done.set(true);
                let ticks = ticker.join().unwrap();
                say(format_args!(
                    "[{}] {CHILDREN} children x {} KiB in {elapsed:?} (slowest spawn \
                     {slowest_spawn:?}); {ticks}",
                    backend(),
                    PAYLOAD / 1024
                ));
                assert!(
                    ticks.worst_blocked < Duration::from_millis(100),
                    "the loop blocked: {ticks}"
                );
                assert!(ticks.worst_late < Duration::from_secs(1), "{ticks}");
            })
        },
    );
}

const TICK: Duration = Duration::from_millis(10);

/// How late the ticker's sleeps ended, worst case: as measured, and less
/// the time the loop's thread was runnable but not running (on two cores
/// shared with a hundred busy children, the OS's scheduler, not the loop,
/// accounts for most of a late tick). What remains is the loop itself
/// blocked or busy, which must stay short.
#[derive(Default)]
struct Ticks {
    count: u32,
    worst_late: Duration,
    worst_blocked: Duration,
    /// The kernel exposes no run-queue times (no schedstat).
    unexplained: bool,
}

impl Ticks {
    fn add(&mut self, late: Duration, queued: Option<Duration>) {
        self.count += 1;
        self.unexplained |= queued.is_none();
        self.worst_late = self.worst_late.max(late);
        let blocked = late.saturating_sub(queued.unwrap_or_default());
        self.worst_blocked = self.worst_blocked.max(blocked);
    }
}

impl std::fmt::Display for Ticks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ticks, worst {:?} late, {:?} of it not waiting for a CPU{}",
            self.count,
            self.worst_late,
            self.worst_blocked,
            if self.unexplained {
                " (no schedstat: all of it counted)"
            } else {
                ""
            }
        )
    }
}

/// Time this thread has spent runnable but waiting for a CPU
/// (`/proc/thread-self/schedstat`, second field), where the kernel keeps
/// it.
fn run_queue_wait() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut bytes = format!("child {i}: ").into_bytes();
    bytes.extend(pattern(i as u64, len));
    bytes
}

/// Spawns `cat`, writes `payload` into it from a second fiber, reads it
/// back on this one, and checks the exit status. Also says how long the
/// spawn itself held the loop.
fn echo_through_cat(i: usize, payload: Rc<Vec<u8>>) -> io::Result<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let spawn_took = start.elapsed();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = loom::spawn(move || stdin.write_all(&payload));
    let mut echoed = Vec::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut echoed)?;
    writer.join().unwrap()?;
    let status = child.wait()?;
    assert!(status.success(), "child {i}: {status}");
    Ok((echoed, spawn_took))
}

const SHELL: &str = "echo out; echo err >&2; exit 3";

#[test]
fn output_and_status_report_what_the_child_did() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            let mut command = Command::new("sh");
            command.args(["-c", SHELL]);
            let output = command.output().unwrap();
            assert_eq!(output.stdout, b"out\n");
            assert_eq!(output.stderr, b"err\n");
            assert_eq!(output.status.code(), Some(3));
            assert!(!output.status.success());
            // The same as std reports.
            let std_output = std::process::Command::new("sh")
                .args(["-c", SHELL])
                .output()
                .unwrap();
            assert_eq!(output, std_output);

            // `output`'s own defaults do not stick: `spawn` inherits again.
            let mut quiet = Command::new("true");
            assert!(quiet.output().unwrap().status.success());
            let mut child = quiet.spawn().unwrap();
            assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
            assert!(child.wait().unwrap().success());

            let status = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert_eq!(status.code(), Some(3));
            // Explicit settings win over `output`'s defaults.
            let output = command.stderr(Stdio::piped()).output().unwrap();
            assert_eq!(
                (&output.stdout[..], &output.stderr[..]),
                (&b""[..], &b"err\n"[..])
            );
        })
    });
}

#[test]
fn a_missing_program_is_not_found_as_in_std() {
    let std_kind = std::process::Command::new("/nonexistent/loom-no-such-program")
        .spawn()
        .unwrap_err()
        .kind();
    assert_eq!(std_kind, io::ErrorKind::NotFound);
    on_each_backend(move || {
        within(Duration::from_secs(20), move || {
            for program in [
                "/nonexistent/loom-no-such-program",
                "loom-no-such-program-in-path",
            ] {
                let error = Command::new(program).spawn().unwrap_err();
                assert_eq!(error.kind(), std_kind, "{program}: {error}");
                let error = Command::new(program).output().unwrap_err();
                assert_eq!(error.kind(), std_kind, "{program}: {error}");
                let error = Command::new(program).status().unwrap_err();
                assert_eq!(error.kind(), std_kind, "{program}: {error}");
            }
        })
    });
}

#[test]
fn kill_ends_a_child_with_sigkill() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            let start = Instant::now();
            let mut child = Command::new("sleep").arg("10").spawn().unwrap();
            assert!(child.id() > 0);
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
            assert_eq!(status.code(), None);
            assert!(start.elapsed() < Duration::from_secs(5));
            // Reaped: nothing is sent (the pid may be someone else's now).
            child.kill().unwrap();
        })
    });
}

#[test]
fn try_wait_sees_the_exit_and_keeps_the_status() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
            assert_eq!(child.try_wait().unwrap(), None, "cat waits for its input");
            drop(child.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                assert!(Instant::now() < deadline, "cat did not exit");
                loom::time::sleep(Duration::from_millis(2)).unwrap();
            };
            assert!(status.success());
            assert_eq!(child.try_wait().unwrap(), Some(status));
            assert_eq!(child.wait().unwrap(), status);
        })
    });
}

#[test]
fn waiting_twice_returns_the_same_status() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            let mut child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
            let first = child.wait().unwrap();
            assert_eq!(first.code(), Some(5));
            assert_eq!(child.wait().unwrap(), first);
            assert_eq!(child.try_wait().unwrap(), Some(first));
        })
    });
}

#[test]
fn a_cancelled_wait_leaves_the_child_for_the_next_wait() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            // Cancelled, then waited for again until it exits by itself.
            let child = Command::new("sh")
                .args(["-c", "sleep 0.3; exit 7"])
                .spawn()
                .unwrap();
            let mut child = cancelled_wait(child);
            assert_eq!(child.try_wait().unwrap(), None, "still running, not reaped");
            let again = loom::spawn(move || child.wait());
            assert_eq!(again.join().unwrap().unwrap().code(), Some(7));

            // Cancelled, then killed and waited for from another fiber.
            let child = Command::new("sleep").arg("10").spawn().unwrap();
            let mut child = cancelled_wait(child);
            let again = loom::spawn(move || {
                child.kill()?;
                child.wait()
            });
            let status = again.join().unwrap().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        })
    });
}

/// Parks a fiber in `child.wait()`, cancels it, checks it returned the
/// cancellation error, and hands the child back.
fn cancelled_wait(mut child: loom::process::Child) -> loom::process::Child {
    let waiter = loom::spawn(move || {
        let result = child.wait();
        (child, result)
    });
    loom::time::sleep(Duration::from_millis(20)).unwrap();
    assert!(!waiter.is_finished(), "the wait returned early");
    waiter.cancel();
    let (child, result) = waiter.join().unwrap();
    let error = result.unwrap_err();
    assert!(loom::fiber::is_cancelled(&error), "{error}");
    child
}

#[test]
fn a_cancelled_fiber_spawns_nothing() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            let fiber = loom::spawn(|| {
                loom::time::sleep(Duration::from_secs(60)).unwrap_err();
                let spawn = Command::new("true").spawn().unwrap_err();
                let output = Command::new("true").output().unwrap_err();
                let status = Command::new("true").status().unwrap_err();
                [spawn, output, status]
            });
            loom::yield_now();
            fiber.cancel();
            for error in fiber.join().unwrap() {
                assert!(loom::fiber::is_cancelled(&error), "{error}");
            }
        })
    });
}

#[test]
fn a_pipe_end_feeds_another_command() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            let mut first = Command::new("sh")
                .args(["-c", "echo one; echo two"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let piped = Stdio::try_from(first.stdout.take().unwrap()).unwrap();
            let second = Command::new("tr")
                .args(["a-z", "A-Z"])
                .stdin(piped)
                .output()
                .unwrap();
            assert_eq!(second.stdout, b"ONE\nTWO\n");
            assert!(first.wait().unwrap().success());
        })
    });
}

#[test]
fn wait_with_output_drains_both_pipes_at_once() {
    const MIB: usize = 1024 * 1024;
    // stderr is written in full first: reading stdout to its end before
    // stderr would leave the child blocked on a full stderr pipe forever.
    let script =
        format!("head -c {MIB} /dev/zero | tr '\\0' e >&2; head -c {MIB} /dev/zero | tr '\\0' o");
    on_each_backend(move || {
        let script = script.clone();
        within(Duration::from_secs(30), move || {
            let start = Instant::now();
            let child = Command::new("sh")
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", output.status);
            assert_eq!(output.stdout.len(), MIB);
            assert_eq!(output.stderr.len(), MIB);
            assert!(output.stdout.iter().all(|&b| b == b'o'));
            assert!(output.stderr.iter().all(|&b| b == b'e'));
            say(format_args!(
                "[{}] 1 MiB of stdout and 1 MiB of stderr in {:?}",
                backend(),
                start.elapsed()
            ));
        })
    });
}

#[test]
fn wait_with_output_when_cancelled_stops_reading() {
    on_each_backend(|| {
        within(Duration::from_secs(20), || {
            let child = Command::new("sleep")
                .arg("10")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let pid = child.id();
            let reader = loom::spawn(move || child.wait_with_output());
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            reader.cancel();
            let error = reader.join().unwrap().unwrap_err();
            assert!(loom::fiber::is_cancelled(&error), "{error}");
            // The child was dropped un-reaped; end it so it does not outlive
            // the test (reaped by nothing until the test binary exits).
            // SAFETY: `pid` is our un-reaped child, so it cannot name another
            // process.
            assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
        })
    });
}

#[test]
fn children_start_with_no_signal_blocked() {
    on_each_backend(|| {
        within(Duration::from_secs(10), || {
            let blocked_in_child = || {
                let output = Command::new("grep")
                    .args(["^SigBlk", "/proc/self/status"])
                    .output()
                    .unwrap();
                assert!(output.status.success(), "{output:?}");
                String::from_utf8(output.stdout).unwrap().trim().to_owned()
            };
            // The pool thread that spawns blocks every catchable signal
            // (posix_spawn path) ...
            assert_eq!(blocked_in_child(), "SigBlk:\t0000000000000000");
            // ... and with SIGUSR2 taken it must stay blocked there while
            // spawning (the pre_exec path).
            let _signals = loom::signal::Signals::new(&[libc::SIGUSR2]).unwrap();
            assert_eq!(blocked_in_child(), "SigBlk:\t0000000000000000");
        })
    });
}
