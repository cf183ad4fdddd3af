//! A thread-per-core TCP echo server: one loop per CPU, each pinned to its
//! CPU and each with a listener of its own on the same address
//! (`SO_REUSEPORT`), so the kernel spreads the connections over the loops
//! and a connection's fiber never leaves the loop that accepted it.
//!
//! ```text
//! cargo run --release --example echo_per_core -- [--threads N] [--addr ADDR]
//! cargo run --release --example echo_per_core -- --self-test [--clients N] [--messages M]
//! ```
//!
//! `--threads` defaults to the CPUs this process may run on, `--addr` to
//! `127.0.0.1:7000`. The backend is `Auto`, so `LOOM_BACKEND=epoll` picks
//! epoll. SIGTERM or SIGINT ends the server: the main fiber prints how many
//! connections each loop accepted and returns, which cancels every fiber on
//! every loop.
//!
//! `--self-test` (implied by `--clients` or `--messages`; default 64
//! clients × 1000 messages) binds a free port, runs the clients as fibers
//! spread over the loops, checks every echo, prints the per-loop counts and
//! exits — 0 if every message came back intact.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use loom::SendJoinHandle;
use loom::net::{ListenOptions, TcpListener, TcpStream};
use loom::signal::{SIGINT, SIGTERM, Signals};

const MESSAGE_BYTES: usize = 64;

/// Command-line options.
struct Options {
    threads: usize,
    /// Whether `threads` is at most the CPUs available, so loops can be
    /// pinned one per CPU.
    pin: bool,
    addr: Option<String>,
    self_test: bool,
    clients: usize,
    messages: usize,
}

impl Options {
    fn parse() -> Options {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut options = Options {
            threads: cpus,
            pin: false,
            addr: None,
            self_test: false,
            clients: 64,
            messages: 1000,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("{name} needs a number"))
            };
            match arg.as_str() {
                "--threads" => {
                    options.threads = value("--threads");
                    assert!(options.threads >= 1, "--threads needs at least 1");
                }
                "--addr" => {
                    options.addr = Some(args.next().expect("--addr needs an address"));
                }
                "--self-test" => options.self_test = true,
                "--clients" => {
                    options.clients = value("--clients");
                    options.self_test = true;
                }
                "--messages" => {
                    options.messages = value("--messages");
                    options.self_test = true;
                }
                other => panic!(
                    "unknown argument {other:?} (expected --threads N, --addr ADDR, \
                     --self-test, --clients N, --messages M)"
                ),
            }
        }
        // Pinning needs a CPU per loop (and Linux); more loops than CPUs
        // run unpinned.
        options.pin = cfg!(target_os = "linux") && options.threads <= cpus;
        options
    }
}

thread_local! {
    /// Connections this loop accepted. Each loop is one thread, so
    /// per-loop state needs no atomics; `broadcast` collects it.
    static ACCEPTED: Cell<u64> = const { Cell::new(0) };
    /// Bytes this loop's connections echoed.
    static ECHOED: Cell<u64> = const { Cell::new(0) };
}

/// Echoes everything `stream` sends until it closes.
fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        // Counted before the write, so a client that got its echo back
        // always finds it counted.
        ECHOED.set(ECHOED.get() + n as u64);
        stream.write_all(&buf[..n])?;
    }
}

/// Binds this loop's listener to `addr` and starts its accept fiber, which
/// serves each connection in a fiber of its own on this loop. Returns the
/// address bound (the port chosen, for port 0).
fn listen(addr: SocketAddr) -> io::Result<SocketAddr> {
    let options = ListenOptions::new().reuse_port(true).backlog(1024);
    let listener = TcpListener::bind_with(addr, &options)?;
    let bound = listener.local_addr()?;
    loom::spawn(move || {
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    ACCEPTED.set(ACCEPTED.get() + 1);
                    loom::spawn(move || serve(stream));
                }
                Err(e) if loom::fiber::is_cancelled(&e) => return,
                // Out of fds and the like: accept backs off by itself.
                Err(e) => eprintln!(
                    "echo_per_core: loop {}: accept: {e}",
                    loom::rt::loop_index()
                ),
            }
        }
    });
    Ok(bound)
}

/// Gives every loop a listener on `addr` and returns the address they
/// share once all of them accept. Loop 0 (the caller's) binds first, so a
/// port 0 becomes one port that the other loops then join; with a fixed
/// port, `loom::broadcast(move || listen(addr))` would do.
fn listen_on_every_loop(addr: SocketAddr) -> io::Result<SocketAddr> {
    assert_eq!(loom::rt::loop_index(), 0, "call from the main fiber");
    let addr = listen(addr)?;
    let others: Vec<_> = (1..loom::rt::loop_count())
        .map(|i| loom::spawn_on(i, move || listen(addr)))
        .collect();
    for other in others {
        join(other)??;
    }
    Ok(addr)
}

/// Joins a fiber of another loop: resumes its panic, or returns the error
/// that kept it from starting.
fn join<T: Send + 'static>(handle: SendJoinHandle<T>) -> io::Result<T> {
    handle
        .join()
        .map_err(|payload| match payload.downcast::<io::Error>() {
            Ok(e) => *e,
            Err(panic) => std::panic::resume_unwind(panic),
        })
}

/// What every loop accepted and echoed, in loop order; prints it and
/// returns the total of connections accepted.
fn report_loops() -> io::Result<u64> {
    let per_loop = loom::broadcast(|| (ACCEPTED.get(), ECHOED.get()))
        .into_iter()
        .map(join)
        .collect::<io::Result<Vec<_>>>()?;
    println!("  {:>4} {:>9} {:>14}", "loop", "accepted", "bytes echoed");
    for (index, (accepted, echoed)) in per_loop.iter().enumerate() {
        println!("  {index:>4} {accepted:>9} {echoed:>14}");
    }
    Ok(per_loop.iter().map(|(accepted, _)| accepted).sum())
}

/// One client: `messages` round trips of a message that names the client
/// and the round, each checked byte for byte.
fn client(addr: SocketAddr, id: usize, messages: usize) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut message = [0u8; MESSAGE_BYTES];
    let mut echo = [0u8; MESSAGE_BYTES];
    for round in 0..messages {
        message[..8].copy_from_slice(&(id as u64).to_le_bytes());
        message[8..16].copy_from_slice(&(round as u64).to_le_bytes());
        message[16..].fill((id + round) as u8);
        stream.write_all(&message)?;
        stream.read_exact(&mut echo)?;
        if echo != message {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("client {id}, round {round}: the echo differs from the message"),
            ));
        }
    }
    Ok(())
}

/// "1 loop", "4 loops".
fn loops() -> String {
    match loom::rt::loop_count() {
        1 => "1 loop".to_owned(),
        n => format!("{n} loops"),
    }
}

fn pinning(options: &Options) -> &'static str {
    if options.pin {
        "one pinned per CPU"
    } else if cfg!(target_os = "linux") {
        "unpinned: more loops than CPUs"
    } else {
        "unpinned: pinning is Linux-only"
    }
}

fn self_test(addr: SocketAddr, options: &Options) -> io::Result<()> {
    let (clients, messages) = (options.clients, options.messages);
    let addr = listen_on_every_loop(addr)?;
    println!(
        "echo_per_core: self-test on {addr}, {} ({} backend, {}), {clients} clients \
         × {messages} messages of {MESSAGE_BYTES} bytes",
        loops(),
        loom::rt::backend(),
        pinning(options)
    );
    let start = Instant::now();
    // Client `i` runs on loop `i % loops`; the kernel picks the loop that
    // serves it.
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            loom::spawn_on(id % loom::rt::loop_count(), move || {
                client(addr, id, messages)
            })
        })
        .collect();
    for handle in handles {
        join(handle)??;
    }
    let elapsed = start.elapsed();
    println!(
        "  {} round trips in {:.1} ms ({:.0}/s), every echo intact",
        clients * messages,
        elapsed.as_secs_f64() * 1e3,
        (clients * messages) as f64 / elapsed.as_secs_f64()
    );
    // Every client got its echoes, so every accept has been counted.
    let accepted = report_loops()?;
    if accepted != clients as u64 {
        return Err(io::Error::other(format!(
            "the loops accepted {accepted} connections for {clients} clients"
        )));
    }
    println!("echo_per_core: self-test passed");
    Ok(())
}

fn server(addr: SocketAddr, options: &Options) -> io::Result<()> {
    // On loop 0, before anything else; the other loops' threads never
    // take a signal (see loom::signal).
    let signals = Signals::new(&[SIGTERM, SIGINT])?;
    let addr = listen_on_every_loop(addr)?;
    println!(
        "echo_per_core: listening on {addr} with {} ({} backend, {}); SIGTERM or Ctrl-C stops",
        loops(),
        loom::rt::backend(),
        pinning(options)
    );
    // Parks the main fiber until a signal arrives.
    signals.recv()?;
    println!("echo_per_core: signal received, shutting down");
    let accepted = report_loops()?;
    println!("  {accepted} connections in all");
    Ok(())
}

fn main() -> io::Result<()> {
    loom_examples::init_logging();
    let options = Options::parse();
    let default_addr = if options.self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:7000"
    };
    let addr = options
        .addr
        .as_deref()
        .unwrap_or(default_addr)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--addr resolves to nothing"))?;
    let rt = loom::Runtime::builder()
        .threads(options.threads)
        .pin(options.pin)
        .build()?;
    rt.run(move || {
        if options.self_test {
            self_test(addr, &options)
        } else {
            server(addr, &options)
        }
    })
}
