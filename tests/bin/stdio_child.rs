//! Child program for tests/stdio.rs: loom's stdin, stdout and stderr with
//! fds 0 and 1 set up by the test (pipes, files, a terminal). The backend
//! comes from `LOOM_BACKEND`; reports go to stderr as `key=value` words.
//! Usage: `loom-stdio-child <scenario>`.

use std::cell::Cell;
use std::io::{self, BufRead, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The ticker fiber's period.
const TICK: Duration = Duration::from_millis(5);

fn main() {
    let scenario = std::env::args()
        .nth(1)
        .expect("usage: loom-stdio-child <scenario>");
    if scenario == "runtimes" {
        return runtimes();
    }
    let result = runtime().run(move || match scenario.as_str() {
        "echo" => echo(),
        "one-line" => one_line(),
        "mixed" => mixed(),
        "broken-pipe" => broken_pipe(),
        "cancel" => cancel(),
        "two-readers" => two_readers(),
        other => panic!("unknown scenario {other:?}"),
    });
    if let Err(e) = result {
        eprintln!("error={:?} ({e})", e.kind());
        std::process::exit(1);
    }
}

fn runtime() -> loom::Runtime {
    loom::Runtime::builder()
        .fibers(16)
        .build()
        .expect("build a runtime")
}

/// Reads a line outside any runtime, then one in each of three runtimes
/// run one after another on this thread — the second while the first's
/// loop is still alive (a join handle keeps it) — echoing each with a tag.
fn runtimes() {
    fn echo_one(tag: &str) -> io::Result<()> {
        let mut line = String::new();
        loom::io::stdin().read_line(&mut line)?;
        write!(loom::io::stdout(), "{tag} {line}")
    }
    echo_one("outside").expect("outside a runtime");
    let keep = runtime().run(|| {
        echo_one("first").expect("in the first runtime");
        loom::spawn(|| ())
    });
    runtime()
        .run(|| echo_one("second"))
        .expect("in the second runtime");
    drop(keep);
    runtime()
        .run(|| echo_one("third"))
        .expect("in the third runtime");
}

fn report(words: std::fmt::Arguments<'_>) -> io::Result<()> {
    writeln!(
        loom::io::stderr(),
        "backend={} {words}",
        loom::rt::backend().name()
    )
}

/// Echoes stdin's lines to stdout while a ticker fiber counts 5 ms ticks;
/// reports how many ticks ran between the first line and end of input,
/// and the latest any of them woke.
fn echo() -> io::Result<()> {
    let ticks = Rc::new(Cell::new(0u64));
    let worst = Rc::new(Cell::new(Duration::ZERO));
    let stop = Rc::new(Cell::new(false));
    let ticker = {
        let (ticks, worst, stop) = (ticks.clone(), worst.clone(), stop.clone());
        loom::spawn(move || -> io::Result<()> {
            let mut next = Instant::now();
            while !stop.get() {
                next += TICK;
                loom::time::sleep_until(next)?;
                worst.set(worst.get().max(next.elapsed()));
                ticks.set(ticks.get() + 1);
            }
            Ok(())
        })
    };
    let mut out = loom::io::stdout();
    let mut lines = 0;
    let mut first_tick = None;
    for line in loom::io::stdin().lines() {
        let line = line?;
        if first_tick.is_none() {
            // Start-up is not what is measured.
            first_tick = Some(ticks.get());
            worst.set(Duration::ZERO);
        }
        writeln!(out, "{line}")?;
        lines += 1;
    }
    let during = ticks.get() - first_tick.unwrap_or(ticks.get());
    stop.set(true);
    ticker.join().expect("the ticker does not panic")?;
    report(format_args!(
        "lines={lines} ticks={during} worst_ms={}",
        worst.get().as_millis()
    ))
}

/// Echoes one line, for an input that never ends.
fn one_line() -> io::Result<()> {
    let mut line = String::new();
    loom::io::stdin().read_line(&mut line)?;
    write!(loom::io::stdout(), "{line}")?;
    report(format_args!("one_line=done"))
}

/// Alternates std's `println!` and loom's `writeln!` on stdout.
fn mixed() -> io::Result<()> {
    for i in 0..20 {
        println!("std {i}");
        writeln!(loom::io::stdout(), "loom {i}")?;
    }
    report(format_args!("mixed=done"))
}

/// Writes a line every 2 ms until a write fails; reports the error kind.
fn broken_pipe() -> io::Result<()> {
    let start = Instant::now();
    let mut out = loom::io::stdout();
    while start.elapsed() < Duration::from_secs(10) {
        if let Err(e) = writeln!(out, "line") {
            return report(format_args!("write_error={:?}", e.kind()));
        }
        loom::time::sleep(Duration::from_millis(2))?;
    }
    report(format_args!("write_error=none"))
}

/// Cancels a fiber waiting in `read_line` on an empty stdin, then reads a
/// line itself (prompted by "ready" on stdout) to show stdin still works.
fn cancel() -> io::Result<()> {
    let reader = loom::spawn(|| {
        let mut line = String::new();
        loom::io::stdin().read_line(&mut line)
    });
    loom::time::sleep(Duration::from_millis(50))?;
    let start = Instant::now();
    reader.cancel();
    let outcome = reader.join().expect("the reader does not panic");
    let took = start.elapsed();
    let cancelled = matches!(&outcome, Err(e) if loom::fiber::is_cancelled(e));
    report(format_args!(
        "cancelled={cancelled} took_ms={}",
        took.as_millis()
    ))?;
    writeln!(loom::io::stdout(), "ready")?;
    let mut line = String::new();
    loom::io::stdin().lock().read_line(&mut line)?;
    write!(loom::io::stdout(), "got {line}")
}

/// Two fibers read lines concurrently, each tagging what it echoes.
fn two_readers() -> io::Result<()> {
    fn reader(tag: &'static str) -> io::Result<usize> {
        let mut count = 0;
        loop {
            let mut line = String::new();
            if loom::io::stdin().read_line(&mut line)? == 0 {
                return Ok(count);
            }
            write!(loom::io::stdout(), "{tag} {line}")?;
            count += 1;
            loom::yield_now();
        }
    }
    let a = loom::spawn(|| reader("a"));
    let b = loom::spawn(|| reader("b"));
    let a = a.join().expect("reader a does not panic")?;
    let b = b.join().expect("reader b does not panic")?;
    report(format_args!("a={a} b={b}"))
}
