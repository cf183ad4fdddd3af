//! The child program of `tests/signal.rs`: signal scenarios need a process
//! of their own, since a process-directed signal goes to any thread that
//! does not block it — in a test binary, one of libtest's threads, whose
//! default action would end the whole run.
//!
//! `loom-signal-child SCENARIO`; the backend is `Auto`, so the test picks
//! it with `LOOM_BACKEND`. Scenarios that wait for the test's signal print
//! `ready` first. Every wait is bounded; exit status 0 means the scenario
//! held.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loom::net::UnixStream;
use loom::signal::{SIGINT, SIGTERM, SIGUSR1, SIGUSR2, Signals};

/// How long any one wait of a scenario may take.
const BOUND: Duration = Duration::from_secs(10);

fn main() {
    let scenario = std::env::args()
        .nth(1)
        .expect("usage: loom-signal-child SCENARIO");
    let result = match scenario.as_str() {
        "shutdown" => shutdown(),
        "ctrl-c" => ctrl_c(),
        "pending" => pending(),
        "no-steal" => no_steal(0),
        "no-steal-loop1" => no_steal(1),
        other => panic!("unknown scenario {other:?}"),
    };
    if let Err(e) = result {
        eprintln!("loom-signal-child {scenario}: {e}");
        std::process::exit(1);
    }
}

fn ready() {
    println!("ready ({} backend)", loom::rt::backend());
    io::stdout().flush().expect("flush stdout");
}

/// Waits, sleeping, until `handle`'s fiber finished, for at most
/// [`BOUND`]; then joins it.
fn join_within<T: 'static>(what: &str, handle: loom::JoinHandle<T>) -> io::Result<T> {
    let deadline = Instant::now() + BOUND;
    while !handle.is_finished() {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what}: not done within {BOUND:?}"),
            ));
        }
        loom::time::sleep(Duration::from_millis(5))?;
    }
    handle
        .join()
        .map_err(|_| io::Error::other(format!("{what}: the fiber panicked")))
}

/// Sends `signal` to the whole process, as `kill` from a shell does.
fn kill_self(signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(libc::getpid(), signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// 1000 fibers parked in reads and one in `Signals::recv`; the test sends
/// SIGTERM, and the shutdown code cancels the readers and reports.
fn shutdown() -> io::Result<()> {
    const READERS: usize = 1000;
    loom_tests::raise_fd_limit();
    let rt = loom::Runtime::builder().build()?;
    rt.run(|| {
        let signals = Signals::new(&[SIGTERM, SIGINT])?;
        let mut peers = Vec::with_capacity(READERS);
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let (mine, peer) = UnixStream::pair()?;
            peers.push(peer);
            readers.push(
                loom::fiber::Builder::new()
                    .name("reader")
                    .stack_size(32 * 1024)
                    .spawn(move || (&mine).read(&mut [0u8; 16]))?,
            );
        }
        let waiter = loom::spawn(move || signals.recv());
        // Every fiber queued before main runs up to its first wait first.
        loom::yield_now();
        if let Some(done) = readers.iter().position(|r| r.is_finished()) {
            return Err(io::Error::other(format!("reader {done} is not parked")));
        }
        ready();
        let signal = join_within("recv", waiter)??;
        println!("shutdown: received signal {signal}");
        for reader in &readers {
            reader.cancel();
        }
        let mut cancelled = 0;
        for reader in readers {
            match join_within("a cancelled reader", reader)? {
                Err(e) if loom::fiber::is_cancelled(&e) => cancelled += 1,
                other => return Err(io::Error::other(format!("a reader ended with {other:?}"))),
            }
        }
        drop(peers);
        println!("shutdown: {cancelled} readers cancelled, clean exit");
        Ok(())
    })
}

/// A fiber in `loom::signal::ctrl_c`; the test sends SIGINT.
fn ctrl_c() -> io::Result<()> {
    loom::Runtime::builder().build()?.run(|| {
        let waiter = loom::spawn(loom::signal::ctrl_c);
        // The fiber runs until it parks, SIGINT blocked by then.
        loom::yield_now();
        ready();
        join_within("ctrl_c", waiter)??;
        println!("ctrl_c returned");
        Ok(())
    })
}

/// Signals sent while no fiber waits are kept for the next `recv` /
/// `try_recv`.
fn pending() -> io::Result<()> {
    loom::Runtime::builder().build()?.run(|| {
        let signals = Rc::new(Signals::new(&[SIGUSR1, SIGUSR2])?);
        if let Some(signal) = signals.try_recv()? {
            return Err(io::Error::other(format!(
                "signal {signal} before any was sent"
            )));
        }
        kill_self(SIGUSR1)?;
        // Nobody waits while it arrives.
        loom::time::sleep(Duration::from_millis(100))?;
        let waiter = {
            let signals = Rc::clone(&signals);
            loom::spawn(move || signals.recv())
        };
        let got = join_within("recv of a pending signal", waiter)??;
        if got != SIGUSR1 {
            return Err(io::Error::other(format!("recv gave {got}, not SIGUSR1")));
        }
        kill_self(SIGUSR2)?;
        let deadline = Instant::now() + BOUND;
        loop {
            match signals.try_recv()? {
                Some(SIGUSR2) => break,
                Some(other) => return Err(io::Error::other(format!("try_recv gave {other}"))),
                None if Instant::now() > deadline => {
                    return Err(io::Error::other("try_recv never saw SIGUSR2"));
                }
                None => loom::time::sleep(Duration::from_millis(5))?,
            }
        }
        println!("pending ok");
        Ok(())
    })
}

/// Two loops and a blocking-pool job running, all started before any
/// `Signals` existed; SIGUSR1 (default action: end the process) sent to
/// the process reaches the `Signals`, made on loop `on_loop`.
fn no_steal(on_loop: usize) -> io::Result<()> {
    loom::Runtime::builder().threads(2).build()?.run(move || {
        let started = Arc::new(AtomicBool::new(false));
        let finish = Arc::new(AtomicBool::new(false));
        let job = {
            let (started, finish) = (Arc::clone(&started), Arc::clone(&finish));
            loom::spawn(move || {
                loom::unblock(move || {
                    started.store(true, Ordering::Release);
                    let deadline = Instant::now() + BOUND;
                    while !finish.load(Ordering::Acquire) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
        };
        let deadline = Instant::now() + BOUND;
        while !started.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return Err(io::Error::other("the blocking job never started"));
            }
            loom::time::sleep(Duration::from_millis(1))?;
        }
        let receiver = loom::spawn_on(on_loop, || -> io::Result<(usize, i32)> {
            let signals = Signals::new(&[SIGUSR1])?;
            kill_self(SIGUSR1)?;
            Ok((loom::rt::loop_index(), signals.recv()?))
        });
        let (index, signal) = loop {
            if receiver.is_finished() {
                break receiver
                    .join()
                    .map_err(|_| io::Error::other("the receiver panicked"))??;
            }
            if Instant::now() > deadline + BOUND {
                return Err(io::Error::other("SIGUSR1 never reached the Signals"));
            }
            loom::time::sleep(Duration::from_millis(5))?;
        };
        finish.store(true, Ordering::Release);
        join_within("the blocking job", job)??;
        if signal != SIGUSR1 {
            return Err(io::Error::other(format!("received {signal}, not SIGUSR1")));
        }
        println!("no-steal ok: SIGUSR1 received on loop {index}");
        Ok(())
    })
}
