//! Graceful shutdown as a pattern: an accept loop in a scope, stopped by
//! SIGTERM (or SIGINT), in-flight connections given a deadline to finish,
//! the rest cancelled.
//!
//! The protocol is line-based keep-alive: each request is a line, each
//! answer `PONG <request>`. On a signal the server
//!
//! 1. stops accepting (the accept loop's fiber is cancelled; connections
//!    still in the listen backlog were never accepted);
//! 2. lets every connection finish the request it is serving: a handler
//!    notices the stop after its answer, or while waiting for a request
//!    (its reads wake every [`POLL`] to look), answers what it already
//!    read, and closes gracefully — `shutdown(Write)` so the client sees end of
//!    file, then it reads and drops what the client still sends until the
//!    client closes — so no client ever gets a reset for a request the
//!    server accepted;
//! 3. waits at most [`DRAIN`] for that (`loom::time::with_timeout` around a
//!    wait for the connection count), then cancels what is left
//!    (`Scope::cancel`); the scope returns once every handler finished.
//!
//! ```sh
//! cargo run --release --example graceful -- 127.0.0.1:7000
//! # elsewhere: printf 'hello\n' | nc 127.0.0.1 7000; then kill -TERM <pid>
//! ```

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::time::Duration;

use loom::fiber::{Scope, is_cancelled};
use loom::net::{TcpListener, TcpStream};
use loom::signal::{SIGINT, SIGTERM, Signals};
use loom::sync::local::WaitGroup;

/// How long live connections get to finish after the signal.
const DRAIN: Duration = Duration::from_secs(2);
/// How often an idle connection looks whether the server is stopping.
const POLL: Duration = Duration::from_millis(100);
/// How long a closing connection waits for its client to close too.
const LINGER: Duration = Duration::from_secs(1);

fn main() -> io::Result<()> {
    loom_examples::init_logging();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    loom::Runtime::builder().build()?.run(move || serve(&addr))
}

fn serve(addr: &str) -> io::Result<()> {
    // First, so that a signal from here on is ours.
    let signals = Signals::new(&[SIGTERM, SIGINT])?;
    let listener = TcpListener::bind(addr)?;
    println!("graceful: listening on {}", listener.local_addr()?);
    let stopping = Cell::new(false);
    let connections = WaitGroup::new();
    let served = Cell::new(0u64);
    let outcome = loom::fiber::scope(|s| -> io::Result<()> {
        let acceptor = s.spawn(|| accept_loop(s, &listener, &stopping, &connections, &served));
        let signal = signals.recv()?;
        println!("graceful: signal {signal}, draining");
        acceptor.cancel();
        stopping.set(true);
        match loom::time::with_timeout(DRAIN, || connections.wait()) {
            Ok(()) => println!("graceful: every connection finished"),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                println!("graceful: drain deadline passed, cancelling the rest");
                s.cancel();
            }
            Err(e) => return Err(e),
        }
        Ok(())
    });
    println!("graceful: stopped after {} requests", served.get());
    outcome
}

fn accept_loop<'scope>(
    s: &'scope Scope<'scope, '_>,
    listener: &'scope TcpListener,
    stopping: &'scope Cell<bool>,
    connections: &'scope WaitGroup,
    served: &'scope Cell<u64>,
) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                connections.add(1);
                s.spawn(move || {
                    if let Err(e) = handle(stream, stopping, served)
                        && !is_cancelled(&e)
                    {
                        eprintln!("graceful: connection: {e}");
                    }
                    connections.done();
                });
            }
            Err(e) if is_cancelled(&e) => return,
            Err(e) => eprintln!("graceful: accept: {e}"),
        }
    }
}

/// Serves one keep-alive connection until the client closes it or the
/// server stops.
fn handle(stream: TcpStream, stopping: &Cell<bool>, served: &Cell<u64>) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    loop {
        // A request already waiting is served even once stopping: the
        // client sent it before it could see our end of file.
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                write!(&stream, "PONG {line}")?;
                served.set(served.get() + 1);
                line.clear();
                // Stopping: this was the request in flight; a busy client
                // gets no more once those it already sent are answered.
                if stopping.get() && reader.buffer().is_empty() {
                    return close_gracefully(&stream);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && line.is_empty() => {
                if stopping.get() && reader.buffer().is_empty() {
                    return close_gracefully(&stream);
                }
            }
            // Part of a line came in: keep it and wait for the rest.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Tells the client there will be no more answers, then waits (bounded)
/// for it to close: closing with its bytes unread would reset it.
fn close_gracefully(stream: &TcpStream) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let mut reader = BufReader::new(stream);
    let drained = loom::time::with_timeout(LINGER, || {
        loop {
            match reader.fill_buf() {
                Ok([]) => return Ok(()),
                Ok(bytes) => {
                    let n = bytes.len();
                    reader.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    });
    match drained {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(()),
        other => other,
    }
}
