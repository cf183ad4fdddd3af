//! loom's demo, in one process and with no configuration:
//!
//! 1. an echo server and client fibers over loopback TCP, about 2 s on
//!    each I/O backend this machine has (io_uring, epoll), printing
//!    messages/s, p50/p99 round-trip latency and the heap allocations made
//!    while measuring;
//! 2. 100 000 fibers, each sleeping on its own 16 KiB stack: how fast they
//!    spawn, how much resident memory an idle fiber costs, and how many
//!    heap allocations spawning them made.
//!
//! Run with `cargo run --release --example demo`; `-- --quick` for a short
//! run, `-- --secs S --conns N` to change the echo phase.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loom::net::{TcpListener, TcpStream};
use loom::rt::Backend;

/// Counts heap allocations, so the demo can show that its data paths make
/// none.
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

/// Command-line options.
struct Options {
    echo_secs: f64,
    connections: usize,
    fibers: usize,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            echo_secs: 2.0,
            connections: 64,
            fibers: 100_000,
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
                other => panic!(
                    "unknown argument {other:?} (expected --quick, --secs S, --conns N, --fibers N)"
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
}

/// What one backend's echo run measured.
struct EchoResult {
    backend: Backend,
    messages_per_sec: f64,
    p50_micros: f64,
    p99_micros: f64,
    allocations: u64,
}

/// Echo server and clients on one loop of `backend`.
fn echo_run(backend: Backend, options: &Options) -> std::io::Result<EchoResult> {
    let rt = loom::Runtime::builder()
        .backend(backend)
        .fibers(2 * options.connections + 16)
        .build()?;
    let connections = options.connections;
    let warm_up = Duration::from_millis(300);
    let measure = Duration::from_secs_f64(options.echo_secs);
    rt.run(move || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        loom::spawn(move || {
            while let Ok((mut stream, _)) = listener.accept() {
                loom::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let histogram = Rc::new(RefCell::new(Histogram::new()));
        let messages = Rc::new(Cell::new(0u64));
        let start = Instant::now() + Duration::from_millis(50);
        let measure_from = start + warm_up;
        let measure_until = measure_from + measure;
        let allocations_at_start = Rc::new(Cell::new(None));
        let clients: Vec<_> = (0..connections)
            .map(|_| {
                let (histogram, messages) = (Rc::clone(&histogram), Rc::clone(&messages));
                let allocations_at_start = Rc::clone(&allocations_at_start);
                loom::spawn(move || -> std::io::Result<()> {
                    let mut stream = TcpStream::connect(addr)?;
                    stream.set_nodelay(true)?;
                    let message = [0x5au8; MESSAGE_BYTES];
                    let mut echo = [0u8; MESSAGE_BYTES];
                    loom::time::sleep_until(start)?;
                    loop {
                        let sent = Instant::now();
                        if sent >= measure_until {
                            return Ok(());
                        }
                        stream.write_all(&message)?;
                        stream.read_exact(&mut echo)?;
                        if sent >= measure_from {
                            if allocations_at_start.get().is_none() {
                                allocations_at_start.set(Some(ALLOCATIONS.load(Ordering::Relaxed)));
                            }
                            histogram.borrow_mut().record(sent.elapsed());
                            messages.set(messages.get() + 1);
                        }
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().expect("a client panicked")?;
        }
        let allocations =
            ALLOCATIONS.load(Ordering::Relaxed) - allocations_at_start.get().unwrap_or(0);
        let histogram = histogram.borrow();
        Ok(EchoResult {
            backend,
            messages_per_sec: messages.get() as f64 / measure.as_secs_f64(),
            p50_micros: histogram.percentile(0.50),
            p99_micros: histogram.percentile(0.99),
            allocations,
        })
    })
}

fn main() -> std::io::Result<()> {
    let options = Options::parse();
    println!(
        "loom demo 1/2: echo over loopback, one loop, {} connections, {MESSAGE_BYTES}-byte \
         messages, {:.1} s per backend",
        options.connections, options.echo_secs
    );
    println!(
        "  {:<9} {:>6} {:>12} {:>9} {:>9} {:>22}",
        "backend", "conns", "messages/s", "p50 µs", "p99 µs", "heap allocs measured"
    );
    for backend in Backend::available() {
        let result = echo_run(backend, &options)?;
        println!(
            "  {:<9} {:>6} {:>12.0} {:>9.1} {:>9.1} {:>22}",
            result.backend.name(),
            options.connections,
            result.messages_per_sec,
            result.p50_micros,
            result.p99_micros,
            result.allocations
        );
    }
    println!();
    sleeping_fibers(options.fibers)
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
