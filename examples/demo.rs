//! loom's demo, in one process and with no configuration:
//!
//! 1. an echo server and client fibers over loopback TCP, about 2 s on
//!    each I/O backend this machine has (io_uring, epoll), printing
//!    messages/s, p50/p99 round-trip latency and the heap allocations made
//!    while measuring — on one loop, or with `--threads N` thread-per-core
//!    on N loops: a listener on every loop (`SO_REUSEPORT`), the client
//!    fibers spread over the loops;
//! 2. 100 000 fibers, each sleeping on its own 16 KiB stack: how fast they
//!    spawn, how much resident memory an idle fiber costs, and how many
//!    heap allocations spawning them made. Below Linux 6.13 each stack's
//!    guard page costs two memory mappings, and the default
//!    `vm.max_map_count` holds about 31 000 of them: the demo then runs as
//!    many as fit and prints one line saying why and how to raise the
//!    limit.
//!
//! Run with `cargo run --release --example demo`; `-- --quick` for a short
//! run, `-- --secs S --conns N --threads N` to change the echo phase,
//! `-- --fibers N` the sleeping one.
//!
//! `main` installs the logger (so an io_uring fallback is seen) and runs
//! `fiber_main::main`, a `#[loom::main]` fiber; each measurement needs a
//! runtime of its own (a chosen backend, a stack pool sized from the
//! command line), so that fiber builds those with
//! `loom::Runtime::builder()` and runs each on the blocking pool
//! (`loom::unblock`), where a thread may start a runtime.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loom::SendJoinHandle;
use loom::net::{ListenOptions, TcpListener, TcpStream};
use loom::rt::Backend;

/// Counts heap allocations, so the demo can show that its data paths make
/// none. One counter for the whole process: with several loops it counts
/// the allocations of every loop's thread.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const MESSAGE_BYTES: usize = 64;
/// The stacks of the echo phase's fibers.
const ECHO_STACK_BYTES: usize = 32 * 1024;

/// Command-line options.
#[derive(Clone)]
struct Options {
    echo_secs: f64,
    connections: usize,
    fibers: usize,
    /// Loops of the echo phase.
    threads: usize,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            echo_secs: 2.0,
            connections: 64,
            fibers: 100_000,
            threads: 1,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or_else(|| panic!("{name} needs a number"))
            };
            match arg.as_str() {
                "--quick" => {
                    options.echo_secs = 0.3;
                    options.fibers = 10_000;
                }
                "--secs" => options.echo_secs = value("--secs"),
                "--conns" => options.connections = value("--conns") as usize,
                "--fibers" => options.fibers = value("--fibers") as usize,
                "--threads" => {
                    options.threads = value("--threads") as usize;
                    assert!(options.threads >= 1, "--threads needs at least 1");
                }
                other => panic!(
                    "unknown argument {other:?} (expected --quick, --secs S, --conns N, \
                     --fibers N, --threads N)"
                ),
            }
        }
        options
    }
}

/// Round-trip latencies in 1 µs buckets up to 100 ms; allocated before the
/// measurement so recording allocates nothing.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Histogram {
    const MAX_MICROS: usize = 100_000;

    fn new() -> Histogram {
        Histogram {
            buckets: vec![0; Self::MAX_MICROS + 1],
            count: 0,
        }
    }

    fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as usize).min(Self::MAX_MICROS);
        self.buckets[micros] += 1;
        self.count += 1;
    }

    /// The latency in µs below which `fraction` of the samples fall.
    fn percentile(&self, fraction: f64) -> f64 {
        let target = (self.count as f64 * fraction).ceil() as u64;
        let mut seen = 0;
        for (micros, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                return micros as f64 + 0.5;
            }
        }
        Self::MAX_MICROS as f64
    }

    fn merge(&mut self, other: &Histogram) {
        for (bucket, n) in self.buckets.iter_mut().zip(&other.buckets) {
            *bucket += n;
        }
        self.count += other.count;
    }
}

/// What one backend's echo run measured.
struct EchoResult {
    backend: Backend,
    messages_per_sec: f64,
    p50_micros: f64,
    p99_micros: f64,
    allocations: u64,
    /// Connections each loop's listener accepted.
    accepted: Vec<u64>,
}

/// When the clients start, and the measured part of their run.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    measure_until: Instant,
}

/// What the client fibers of one loop measured.
struct Load {
    histogram: Histogram,
    messages: u64,
    /// The allocation counter when this loop's first measured round trip
    /// began.
    allocations_at_start: Option<u64>,
}

/// Binds this loop's echo listener to `addr` and starts its accept fiber;
/// returns the address bound. `accepted[loop]` counts its connections.
fn listen(addr: SocketAddr, accepted: Arc<[AtomicU64]>) -> std::io::Result<SocketAddr> {
    // Several loops share the port; one loop binds it alone, as before.
    let options = ListenOptions::new().reuse_port(loom::rt::loop_count() > 1);
    let listener = TcpListener::bind_with(addr, &options)?;
    let bound = listener.local_addr()?;
    accept_loop(listener, accepted);
    Ok(bound)
}

/// Accepts until the listener fails (or the fiber is cancelled at
/// shutdown), one `serve` fiber per connection.
#[loom::fiber(name = "accept")]
fn accept_loop(listener: TcpListener, accepted: Arc<[AtomicU64]>) {
    while let Ok((stream, _)) = listener.accept() {
        accepted[loom::rt::loop_index()].fetch_add(1, Ordering::Relaxed);
        serve(stream);
    }
}

/// Echoes until the peer closes. Built with `--features tracy`, each
/// connection is a zone in Tracy, cut into one segment per run slice.
#[loom::fiber(name = "conn", profile)]
fn serve(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        if stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// A listener on every loop: loop 0 (the main fiber's) binds a free port,
/// then the other loops bind the same one. Returns once all of them accept.
fn listen_on_every_loop(accepted: &Arc<[AtomicU64]>) -> std::io::Result<SocketAddr> {
    let addr = listen(([127, 0, 0, 1], 0).into(), Arc::clone(accepted))?;
    let others: Vec<_> = (1..loom::rt::loop_count())
        .map(|i| {
            let accepted = Arc::clone(accepted);
            loom::spawn_on(i, move || listen(addr, accepted))
        })
        .collect();
    for other in others {
        join(other)??;
    }
    Ok(addr)
}

/// Joins a fiber of another loop: resumes its panic, or returns the error
/// that kept it from starting.
fn join<T: Send + 'static>(handle: SendJoinHandle<T>) -> std::io::Result<T> {
    handle
        .join()
        .map_err(|payload| match payload.downcast::<std::io::Error>() {
            Ok(e) => *e,
            Err(panic) => std::panic::resume_unwind(panic),
        })
}

/// What the client fibers of one loop record as they go; shared by them
/// (one loop, so `Cell`s suffice).
struct Tally {
    histogram: RefCell<Histogram>,
    messages: Cell<u64>,
    /// The allocation counter when the first measured round trip began.
    allocations_at_start: Cell<Option<u64>>,
}

/// One client: connects, waits for the window to open, then makes round
/// trips until it closes, recording those inside the measured part.
#[loom::fiber(name = "client")]
fn client(addr: SocketAddr, window: Window, tally: Rc<Tally>) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let message = [0x5au8; MESSAGE_BYTES];
    let mut echo = [0u8; MESSAGE_BYTES];
    loom::time::sleep_until(window.start)?;
    loop {
        let sent = Instant::now();
        if sent >= window.measure_until {
            return Ok(());
        }
        stream.write_all(&message)?;
        stream.read_exact(&mut echo)?;
        if sent >= window.measure_from {
            if tally.allocations_at_start.get().is_none() {
                let now = ALLOCATIONS.load(Ordering::Relaxed);
                tally.allocations_at_start.set(Some(now));
            }
            tally.histogram.borrow_mut().record(sent.elapsed());
            tally.messages.set(tally.messages.get() + 1);
        }
    }
}

/// Runs `clients` client fibers on this loop, each making round trips to
/// `addr` until the window closes, and joins them.
fn run_clients(addr: SocketAddr, clients: usize, window: Window) -> std::io::Result<Load> {
    let tally = Rc::new(Tally {
        histogram: RefCell::new(Histogram::new()),
        messages: Cell::new(0),
        allocations_at_start: Cell::new(None),
    });
    let handles: Vec<_> = (0..clients)
        .map(|_| client(addr, window, Rc::clone(&tally)))
        .collect();
    for handle in handles {
        handle.join().expect("a client panicked")?;
    }
    let tally = Rc::into_inner(tally).expect("the clients are done");
    Ok(Load {
        histogram: tally.histogram.into_inner(),
        messages: tally.messages.get(),
        allocations_at_start: tally.allocations_at_start.get(),
    })
}

/// Whether `threads` loops can be pinned one per CPU.
fn can_pin(threads: usize) -> bool {
    cfg!(target_os = "linux")
        && threads <= std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Echo server and clients on `options.threads` loops of `backend`: a
/// listener on every loop, client `i` on loop `i % threads`.
fn echo_run(backend: Backend, options: &Options) -> std::io::Result<EchoResult> {
    let threads = options.threads;
    let rt = loom::Runtime::builder()
        .backend(backend)
        .threads(threads)
        .pin(threads > 1 && can_pin(threads))
        .fibers(2 * options.connections + 16)
        // Every fiber here holds at most a 4 KiB buffer.
        .stack_size(ECHO_STACK_BYTES)
        .build()?;
    let connections = options.connections;
    let warm_up = Duration::from_millis(300);
    let measure = Duration::from_secs_f64(options.echo_secs);
    rt.run(move || {
        let accepted: Arc<[AtomicU64]> = (0..threads).map(|_| AtomicU64::new(0)).collect();
        let addr = listen_on_every_loop(&accepted)?;
        let start = Instant::now() + Duration::from_millis(50);
        let window = Window {
            start,
            measure_from: start + warm_up,
            measure_until: start + warm_up + measure,
        };
        let load = if threads == 1 {
            run_clients(addr, connections, window)?
        } else {
            // Loop `i` runs the clients `j` with `j % threads == i`.
            let loads = loom::broadcast(move || {
                let index = loom::rt::loop_index();
                let clients = (index..connections).step_by(threads).count();
                run_clients(addr, clients, window)
            });
            let mut merged: Option<Load> = None;
            for load in loads {
                let load = join(load)??;
                match &mut merged {
                    None => merged = Some(load),
                    Some(merged) => {
                        merged.histogram.merge(&load.histogram);
                        merged.messages += load.messages;
                        // The counter only grows: the earliest reading is
                        // the smallest.
                        merged.allocations_at_start =
                            match (merged.allocations_at_start, load.allocations_at_start) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                    }
                }
            }
            merged.expect("at least one loop")
        };
        let allocations =
            ALLOCATIONS.load(Ordering::Relaxed) - load.allocations_at_start.unwrap_or(0);
        Ok(EchoResult {
            backend,
            messages_per_sec: load.messages as f64 / measure.as_secs_f64(),
            p50_micros: load.histogram.percentile(0.50),
            p99_micros: load.histogram.percentile(0.99),
            allocations,
            accepted: accepted.iter().map(|n| n.load(Ordering::Relaxed)).collect(),
        })
    })
}

/// Installs the logger, then runs [`fiber_main::main`]. `#[loom::main]`
/// builds its runtime before its body runs, and building it is when an
/// io_uring the host refuses is logged (with the epoll used instead), so
/// the logger cannot wait for the body: it goes here, first.
fn main() -> std::io::Result<()> {
    loom_examples::init_logging();
    fiber_main::main()
}

/// The demo, as the main fiber. In a module of its own because
/// `#[loom::main]` goes on a function named `main`, and the crate's `main`
/// is the one above.
mod fiber_main {
    use super::*;

    #[loom::main]
    pub fn main() -> std::io::Result<()> {
        let options = Options::parse();
        let loops = match options.threads {
            1 => "one loop".to_owned(),
            n if can_pin(n) => format!(
                "{n} loops pinned one per CPU, a listener on each (SO_REUSEPORT), clients spread \
                 over them"
            ),
            n => format!(
                "{n} loops (unpinned: more loops than CPUs), a listener on each (SO_REUSEPORT), \
                 clients spread over them"
            ),
        };
        println!(
            "loom demo 1/2: echo over loopback, {loops}, {} connections, {MESSAGE_BYTES}-byte \
             messages, {:.1} s per backend",
            options.connections, options.echo_secs
        );
        let multi = options.threads > 1;
        println!(
            "  {:<9} {:>5} {:>6} {:>12} {:>9} {:>9} {:>22}{}",
            "backend",
            "loops",
            "conns",
            "messages/s",
            "p50 µs",
            "p99 µs",
            "heap allocs measured",
            if multi { "  accepted per loop" } else { "" }
        );
        for backend in Backend::available() {
            let run_options = options.clone();
            let result = loom::unblock(move || echo_run(backend, &run_options))??;
            let accepted = if multi {
                let counts: Vec<_> = result.accepted.iter().map(u64::to_string).collect();
                format!("  {}", counts.join("/"))
            } else {
                String::new()
            };
            println!(
                "  {:<9} {:>5} {:>6} {:>12.0} {:>9.1} {:>9.1} {:>22}{accepted}",
                result.backend.name(),
                options.threads,
                options.connections,
                result.messages_per_sec,
                result.p50_micros,
                result.p99_micros,
                result.allocations
            );
        }
        if multi {
            println!(
                "  (heap allocations: one process-wide counter, so they cover every loop, from the \
                 first measured round trip on any loop until the last client finished)"
            );
        }
        println!();
        let fibers = fibers_that_fit(options.fibers);
        loom::unblock(move || sleeping_fibers(fibers))?
    }
}

/// `wanted`, or as many fibers as the host's stack budget holds, with one
/// line saying why it is fewer.
fn fibers_that_fit(wanted: usize) -> usize {
    let budget = loom::rt::stack_budget();
    // The main fiber takes a stack too; a few mappings may appear between
    // this reading and the runtime's own (a thread, a ring).
    let fit = match budget.stacks() {
        Some(stacks) if stacks < wanted + 1 => stacks.saturating_sub(1 + 64),
        _ => return wanted,
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| "this kernel".to_owned(),
        |r| format!("Linux {}", r.trim()),
    );
    let guards = if std::env::var("LOOM_STACK_GUARD").as_deref() == Ok("mprotect") {
        "LOOM_STACK_GUARD=mprotect asks for mprotect guard pages".to_owned()
    } else {
        format!("{kernel} has no MADV_GUARD_INSTALL (Linux >= 6.13), so guard pages use mprotect")
    };
    let needed = budget.max_map_count_for(wanted + 1 + 64).unwrap_or(0);
    println!(
        "note: running {fit} fibers, not {wanted}: {guards}, two memory mappings per stack, and \
         vm.max_map_count = {} leaves room for {} stacks; {wanted} need vm.max_map_count >= \
         {needed} (raise it: sudo sysctl -w vm.max_map_count={needed})",
        budget.max_map_count().unwrap_or(0),
        budget.stacks().unwrap_or(0),
    );
    fit
}

const STACK_BYTES: usize = 16 * 1024;

/// Resident set size of this process, from /proc/self/status (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Part 2: `fibers` fibers sleeping on their own small stacks.
fn sleeping_fibers(fibers: usize) -> std::io::Result<()> {
    let rt = loom::Runtime::builder()
        .fibers(fibers + 1) // + the main fiber
        .max_fibers(fibers + 1)
        .stack_size(STACK_BYTES)
        .build()?;
    println!(
        "loom demo 2/2: {fibers} fibers with {} KiB stacks on one loop",
        STACK_BYTES / 1024
    );
    println!("  reserved stacks    {:>10}", rt.reserved_fibers());

    rt.run(move || {
        let mut handles = Vec::with_capacity(fibers);
        let rss_before = resident_bytes();
        let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);

        let start = Instant::now();
        for _ in 0..fibers {
            handles.push(loom::spawn(|| loom::time::sleep(Duration::from_secs(3600))));
        }
        let spawned = start.elapsed();
        // Let every fiber run up to its sleep.
        loom::yield_now();
        let asleep = start.elapsed();

        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
        let rss_after = resident_bytes();
        println!(
            "  spawn rate         {:>10.2} M fibers/s ({:.1} ns per spawn; first use of each \
             stack, so mostly page faults)",
            fibers as f64 / spawned.as_secs_f64() / 1e6,
            spawned.as_nanos() as f64 / fibers as f64
        );
        println!("  all asleep after   {:>10.1} ms", asleep.as_secs_f64() * 1e3);
        match (rss_before, rss_after) {
            (Some(before), Some(after)) => println!(
                "  resident per fiber {:>10.2} KiB (idle, sleeping; {:.1} MiB in all)",
                after.saturating_sub(before) as f64 / fibers as f64 / 1024.0,
                after.saturating_sub(before) as f64 / (1024.0 * 1024.0)
            ),
            _ => println!("  resident per fiber        n/a (no /proc/self/status)"),
        }
        println!("  heap allocations   {allocations:>10} while spawning {fibers} fibers and putting them to sleep");

        // Cancelling makes each sleep return ECANCELED, so every fiber
        // finishes and its stack goes back to the pool. (Returning from main
        // without this would cancel them the same way.)
        let shutdown = Instant::now();
        for handle in &handles {
            handle.cancel();
        }
        let interrupted = handles
            .into_iter()
            .map(|h| h.join().expect("a sleeper panicked"))
            .filter(|r| r.as_ref().is_err_and(loom::fiber::is_cancelled))
            .count();
        println!(
            "  cancel + join      {:>10.1} ms ({interrupted} sleeps interrupted)",
            shutdown.elapsed().as_secs_f64() * 1e3
        );
    });
    Ok(())
}
