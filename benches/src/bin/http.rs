//! HTTP/1.1 servers side by side: loom (io_uring and epoll backends)
//! running `loom_examples::http`, monoio running the same request code,
//! may_minihttp as shipped, and hyper on tokio `current_thread`, all
//! driven by the same load generator.
//!
//! ```text
//! cargo run --release -p loom-benches --bin http -- [OPTIONS]
//!
//!   --cell a,b,..     cells: plaintext, pipelined, json (default: all three)
//!   --servers a,b,..  servers (default: loom-io_uring,loom-epoll,may_minihttp,monoio,hyper)
//!   --secs s          measured window per measurement (default: 1.5)
//!   --warmup s        warm-up before each window (default: 0.3)
//!   --rounds n        rounds (default: 5)
//!   --retries n       re-measurements of a noisy sample (default: 3)
//!   --quick           smoke run: --secs 0.3 --warmup 0.1 --rounds 1 --retries 0
//!   --strace          count server syscalls per request instead (needs strace)
//! ```
//!
//! The cells (the issue's): `/plaintext` over 64 connections with one
//! request in flight on each (`plaintext`), the same with 16 pipelined
//! requests in flight, written in one write (`pipelined`), and `/json`
//! over 64 connections, one in flight (`json`).
//!
//! The harness is the echo bench's ([`loom_benches::harness`]): each
//! measurement starts a fresh server process — this binary re-executed as
//! `http --server <name>`, pinned to CPU 0 — and drives it from this
//! process, pinned to CPU 1 (one mio thread; every response parsed and
//! checked: status 200, `Content-Length`, the exact body). Rounds
//! alternate the servers, the median per cell is reported. Server CPU is
//! the server process's own `/proc/<pid>/task/*/schedstat` over the
//! window, divided by the requests answered in it.
//!
//! Allocations: the binary's global allocator counts every allocation
//! process-wide and per thread. The server process answers the harness's
//! `allocs` query (a line on its stdin, before and after the window) with
//! its allocations less those of the thread answering, so the figure is
//! exactly what the server's own threads allocated; the client, in
//! another process, is not in it.
//!
//! Output: one table per cell on stdout — requests/s, server µs per
//! request, allocations per request, and the ratios the issue's targets
//! are stated in — followed by the targets, met or not:
//!
//! * loom io_uring's server CPU per request ≤ 0.9× the best peer's
//!   (may_minihttp, monoio, hyper) in every cell;
//! * loom epoll's ≤ 1.0× hyper's;
//! * 0 allocations per request for loom.
//!
//! Progress and per-measurement figures go to stderr. The exit status is
//! non-zero if a server failed to start or a measurement failed (a wrong
//! or missing response, say); targets missed do not change it.
//!
//! With `--strace`, each server serves one window under `strace -c -f`
//! after a warm-up instead (the load stops before strace attaches and
//! before it detaches, so only the counted requests' syscalls are in it),
//! and a table of syscalls per request is printed. strace slows every
//! syscall, so the counts of waits (`epoll_wait`, `io_uring_enter`) are
//! lower bounds; reads and writes are exact.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use loom_benches::harness::strace::Strace;
use loom_benches::harness::{
    CLIENT_CPU, Failure, Measurement, Medians, Rounds, SERVER_CPU, ServerProcess, Table, Window,
    bench_cpus, parse_list, parse_num, report_port, retry_quietly, run_rounds, sys, wait_quiet,
};
use loom_benches::http::client::Client;
use loom_benches::http::{CONNECTIONS, Cell, Impl, servers};
use loom_benches::{ThreadCountingAlloc, allocs, thread_allocs};

/// Counts allocations per thread, so the server process can tell its
/// server threads' allocations apart from its control thread's.
#[global_allocator]
static ALLOC: ThreadCountingAlloc = ThreadCountingAlloc;

/// The target for loom io_uring: its server CPU per request over the best
/// peer's.
const IO_URING_TARGET: f64 = 0.9;
/// The target for loom epoll: its server CPU per request over hyper's.
const EPOLL_TARGET: f64 = 1.0;

/// How long strace gets to attach before the measurement is abandoned.
const STRACE_ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--server") {
        return server_main(args.get(1).map(String::as_str).unwrap_or(""));
    }
    let opts = match Options::parse(&args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("http: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sys::pin_current_thread(CLIENT_CPU) {
        eprintln!("http: {e}");
        return ExitCode::from(2);
    }
    let ok = if opts.strace {
        run_strace(&opts)
    } else {
        run_throughput(&opts)
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

const USAGE: &str = "usage: http [--cell plaintext,pipelined,json] [--servers a,b] [--secs S] \
[--warmup S] [--rounds N] [--retries N] [--quick] [--strace]
       http --server <name>   (internal: run one server)
servers: loom-io_uring, loom-epoll, may_minihttp, monoio, hyper";

// -------------------------------------------------------------- options ----

/// Command-line options of the harness.
#[derive(Debug)]
struct Options {
    servers: Vec<Impl>,
    cells: Vec<Cell>,
    secs: f64,
    warmup: f64,
    rounds: usize,
    retries: usize,
    strace: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut servers = Impl::ALL.to_vec();
        let mut cells = Cell::ALL.to_vec();
        let (mut secs, mut warmup, mut rounds, mut retries) = (None, None, None, None);
        let mut quick = false;
        let mut strace = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag {
                "--servers" | "--impl" => servers = parse_list(&value()?)?,
                "--cell" | "--cells" => cells = parse_list(&value()?)?,
                "--secs" => secs = Some(parse_num::<f64>(flag, &value()?)?),
                "--warmup" => warmup = Some(parse_num::<f64>(flag, &value()?)?),
                "--rounds" => rounds = Some(parse_num::<usize>(flag, &value()?)?),
                "--retries" => retries = Some(parse_num::<usize>(flag, &value()?)?),
                "--quick" => quick = true,
                "--strace" => strace = true,
                "-h" | "--help" => return Err("help".into()),
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        let opts = Options {
            servers,
            cells,
            secs: secs.unwrap_or(if quick { 0.3 } else { 1.5 }),
            warmup: warmup.unwrap_or(if quick { 0.1 } else { 0.3 }),
            rounds: rounds.unwrap_or(if quick || strace { 1 } else { 5 }),
            retries: retries.unwrap_or(if quick { 0 } else { 3 }),
            strace,
        };
        if opts.servers.is_empty() || opts.cells.is_empty() {
            return Err("--servers and --cell need at least one value".into());
        }
        if !(opts.secs > 0.0 && opts.warmup >= 0.0 && opts.rounds > 0) {
            return Err("--secs and --rounds must be positive, --warmup not negative".into());
        }
        Ok(opts)
    }
}

// --------------------------------------------------------------- server ----

/// `http --server <name>`: pin to [`SERVER_CPU`] (before any runtime
/// starts a thread, so every thread inherits the mask), start the control
/// thread, and serve until killed.
fn server_main(name: &str) -> ExitCode {
    let imp: Impl = match name.parse() {
        Ok(imp) => imp,
        Err(e) => {
            eprintln!("http --server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sys::pin_current_thread(SERVER_CPU) {
        eprintln!("http --server {imp}: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = std::thread::Builder::new()
        .name("control".into())
        .spawn(control_thread)
    {
        eprintln!("http --server {imp}: cannot start the control thread: {e}");
        return ExitCode::FAILURE;
    }
    match servers::serve(imp, report_port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http --server {imp}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Answers the harness's queries on stdin, one line each: `allocs` →
/// `allocs=<n>`, the allocations of every thread but this one (its line
/// buffers and formatting allocate; the server's threads are what is
/// measured). Ends the process when stdin closes: the harness is gone.
fn control_thread() {
    let mut line = String::new();
    let stdin = io::stdin();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => std::process::exit(0),
            Ok(_) => {}
        }
        // Read both counters after the line is in: what this thread
        // allocated for it is then in both and cancels out.
        let own = thread_allocs();
        let all = allocs();
        let answer = match line.trim() {
            "allocs" => format!("allocs={}", all - own),
            other => format!("error=unknown query {other:?}"),
        };
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

/// The server's allocation count so far (see [`control_thread`]).
fn server_allocs(server: &mut ServerProcess) -> io::Result<u64> {
    let answer = server.query("allocs")?;
    answer
        .strip_prefix("allocs=")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected answer to `allocs`: {answer:?}")))
}

/// Starts `http --server <imp>` with a control channel.
fn start_server(imp: Impl) -> Result<ServerProcess, Failure> {
    let args = ["--server".to_owned(), imp.name().to_owned()];
    ServerProcess::spawn(&args, true).map_err(Failure::start)
}

// ----------------------------------------------------------- throughput ----

fn measure(imp: Impl, cell: Cell, opts: &Options) -> Result<Measurement, Failure> {
    let cpus = bench_cpus(1);
    wait_quiet(&cpus).map_err(Failure::Run)?;
    let mut server = start_server(imp)?;
    let pid = server.pid();
    let mut run = || -> io::Result<Measurement> {
        let mut client = Client::connect(server.addr(), CONNECTIONS, cell)?;
        client.start()?;
        client.run_until_instant(Instant::now() + Duration::from_secs_f64(opts.warmup))?;
        // The queries bracket the window: the control thread's wake-ups
        // stay out of the CPU figures, and the allocation counts cover
        // the window (plus the few microseconds of the queries).
        let allocs0 = server_allocs(&mut server)?;
        let n0 = client.completed();
        let window = Window::begin(pid, &cpus)?;
        client.run_until_instant(window.start() + Duration::from_secs_f64(opts.secs))?;
        let n = client.completed() - n0;
        let mut m = window.end(n, &imp)?;
        let allocs1 = server_allocs(&mut server)?;
        m.allocs_per_op = Some((allocs1 - allocs0) as f64 / n as f64);
        Ok(m)
    };
    run().map_err(Failure::Run)
}

fn run_throughput(opts: &Options) -> bool {
    let rounds = run_rounds(
        opts.rounds,
        &opts.servers,
        &opts.cells,
        |cell| format!("{cell:>9}"),
        |imp, cell, label| retry_quietly(opts.retries, label, "req", || measure(imp, cell, opts)),
        |imp, reason| eprintln!("{imp}: skipped: {reason}"),
    );
    if rounds.noisy > 0 {
        eprintln!(
            "note: {} sample(s) stayed noisy after {} retries; their requests/s is low",
            rounds.noisy, opts.retries
        );
    }
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "HTTP bench: median of {} round(s) of {} s per cell and server; server pinned to \
         CPU {SERVER_CPU}, load generator to CPU {CLIENT_CPU}",
        opts.rounds, opts.secs
    );
    let mut complete = true;
    let mut verdicts = Vec::new();
    for &cell in &opts.cells {
        let (table, cell_verdicts, all_there) = cell_table(cell, &rounds, opts);
        complete &= all_there;
        let _ = writeln!(out, "\n{}\n\n{table}", cell.title());
        for verdict in &cell_verdicts {
            let _ = writeln!(out, "{verdict}");
        }
        verdicts.extend(cell_verdicts.into_iter().map(|v| v.met));
    }
    let met = verdicts.iter().filter(|&&m| m).count();
    let _ = writeln!(out, "\ntargets met: {met} of {}", verdicts.len());
    let _ = out.flush();
    complete && rounds.failed == 0 && rounds.broken.is_empty() && rounds.skipped.is_empty()
}

/// A target checked in one cell.
struct Verdict {
    text: String,
    met: bool,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let met = if self.met { "met" } else { "NOT met" };
        write!(f, "  target: {} — {met}", self.text)
    }
}

/// `x` as a ratio, `-` when unknown.
fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".to_owned()
    }
}

/// Allocations per request: `0` when none at all, else enough digits to
/// see a rare allocation.
fn allocs_field(x: f64) -> String {
    if x.is_nan() {
        "-".to_owned()
    } else if x == 0.0 {
        "0".to_owned()
    } else if x >= 0.01 {
        format!("{x:.2}")
    } else {
        format!("{x:.1e}")
    }
}

/// The table for `cell`, the targets checked in it, and whether every
/// selected server has a median in it.
fn cell_table(
    cell: Cell,
    rounds: &Rounds<Impl, Cell>,
    opts: &Options,
) -> (Table, Vec<Verdict>, bool) {
    let medians: Vec<(Impl, Medians)> = opts
        .servers
        .iter()
        .filter_map(|&imp| Some((imp, rounds.medians(imp, cell)?)))
        .collect();
    let get = |imp: Impl| medians.iter().find(|(i, _)| *i == imp).map(|(_, m)| *m);
    let best_peer = medians
        .iter()
        .filter(|(imp, _)| !imp.is_loom())
        .min_by(|a, b| {
            a.1.server_cpu_us_per_op
                .total_cmp(&b.1.server_cpu_us_per_op)
        })
        .map(|&(imp, m)| (imp, m.server_cpu_us_per_op));
    let hyper = get(Impl::Hyper);
    let hyper_cpu = hyper.map_or(f64::NAN, |m| m.server_cpu_us_per_op);
    let hyper_rate = hyper.map_or(f64::NAN, |m| m.ops_per_s);
    let best_cpu = best_peer.map_or(f64::NAN, |(_, cpu)| cpu);

    let mut table = Table::new(&[
        "server",
        "requests/s",
        "req/s ÷ hyper",
        "server µs/req",
        "µs/req ÷ best peer",
        "µs/req ÷ hyper",
        "allocs/req",
    ]);
    for &(imp, m) in &medians {
        table.row(vec![
            imp.name().to_owned(),
            format!("{:.0}", m.ops_per_s),
            ratio(m.ops_per_s / hyper_rate),
            format!("{:.2}", m.server_cpu_us_per_op),
            ratio(m.server_cpu_us_per_op / best_cpu),
            ratio(m.server_cpu_us_per_op / hyper_cpu),
            allocs_field(m.allocs_per_op),
        ]);
    }

    let mut verdicts = Vec::new();
    if let (Some(loom), Some((peer, peer_cpu))) = (get(Impl::LoomIoUring), best_peer) {
        let r = loom.server_cpu_us_per_op / peer_cpu;
        verdicts.push(Verdict {
            text: format!(
                "loom-io_uring µs/req ≤ {IO_URING_TARGET:.2}× best peer's ({peer}, {peer_cpu:.2} \
                 µs): {r:.2}×"
            ),
            met: r <= IO_URING_TARGET,
        });
    }
    if let (Some(loom), Some(hyper)) = (get(Impl::LoomEpoll), hyper) {
        let r = loom.server_cpu_us_per_op / hyper.server_cpu_us_per_op;
        verdicts.push(Verdict {
            text: format!(
                "loom-epoll µs/req ≤ {EPOLL_TARGET:.2}× hyper's ({:.2} µs): {r:.2}×",
                hyper.server_cpu_us_per_op
            ),
            met: r <= EPOLL_TARGET,
        });
    }
    let loom_allocs: Vec<(Impl, f64)> = medians
        .iter()
        .filter(|(imp, _)| imp.is_loom())
        .map(|&(imp, m)| (imp, m.allocs_per_op))
        .collect();
    if !loom_allocs.is_empty() {
        let list: Vec<String> = loom_allocs
            .iter()
            .map(|(imp, a)| format!("{imp} {}", allocs_field(*a)))
            .collect();
        verdicts.push(Verdict {
            text: format!("0 allocations per request: {}", list.join(", ")),
            met: loom_allocs.iter().all(|&(_, a)| a == 0.0),
        });
    }
    (table, verdicts, medians.len() == opts.servers.len())
}

// --------------------------------------------------------------- strace ----

/// Syscalls per request (total, and the per-syscall breakdown) for one
/// server in one cell.
fn count_syscalls(
    imp: Impl,
    cell: Cell,
    opts: &Options,
) -> Result<(f64, Vec<(String, f64)>), Failure> {
    let server = start_server(imp)?;
    let pid = server.pid();
    let run = || -> io::Result<(f64, Vec<(String, f64)>)> {
        let mut client = Client::connect(server.addr(), CONNECTIONS, cell)?;
        client.start()?;
        client.run_until_instant(Instant::now() + Duration::from_secs_f64(opts.warmup))?;
        // Attach to a quiescent server, so the count covers exactly the
        // syscalls made for the requests counted (plus idle wake-ups).
        client.drain()?;
        let output =
            std::env::temp_dir().join(format!("loom-http-strace-{}-{pid}.txt", std::process::id()));
        let mut strace = Strace::attach(pid, &output)?;
        let deadline = Instant::now() + STRACE_ATTACH_TIMEOUT;
        client.run_until(|_| strace.attached() || Instant::now() >= deadline)?;
        if !strace.attached() {
            let exited = strace.exited();
            let summary = strace.finish();
            return Err(io::Error::other(format!(
                "strace did not attach within {STRACE_ATTACH_TIMEOUT:?} (exited: {exited}; {:?})",
                summary.err()
            )));
        }
        let n0 = client.completed();
        client.start()?;
        client.run_until_instant(Instant::now() + Duration::from_secs_f64(opts.secs))?;
        client.drain()?;
        let n = (client.completed() - n0) as f64;
        let counts = strace.finish()?;
        let total = counts.last().map_or(0, |c| c.calls);
        let mut breakdown: Vec<(String, f64)> = counts
            .iter()
            .filter(|c| c.name != "total")
            .map(|c| (c.name.clone(), c.calls as f64 / n))
            .collect();
        breakdown.sort_by(|a, b| b.1.total_cmp(&a.1));
        eprintln!("{imp} {cell}: {n} requests while attached");
        Ok((total as f64 / n, breakdown))
    };
    run().map_err(Failure::Run)
}

fn run_strace(opts: &Options) -> bool {
    let mut ok = true;
    let mut broken: HashSet<Impl> = HashSet::new();
    let mut out = io::stdout().lock();
    for &cell in &opts.cells {
        let mut table = Table::new(&["server", "syscalls/req", "top syscalls per request"]).left(2);
        for &imp in &opts.servers {
            if broken.contains(&imp) {
                continue;
            }
            match count_syscalls(imp, cell, opts) {
                Ok((total, breakdown)) => {
                    let top: Vec<String> = breakdown
                        .iter()
                        .take(5)
                        .map(|(name, n)| format!("{name}={n:.3}"))
                        .collect();
                    table.row(vec![
                        imp.name().to_owned(),
                        format!("{total:.3}"),
                        top.join(" "),
                    ]);
                }
                Err(Failure::Skip(reason)) => {
                    eprintln!("{imp}: skipped: {reason}");
                    broken.insert(imp);
                    ok = false;
                }
                Err(Failure::Start(e)) => {
                    eprintln!("{imp}: server failed to start, skipping it: {e}");
                    broken.insert(imp);
                    ok = false;
                }
                Err(Failure::Run(e)) => {
                    eprintln!("{imp} {cell}: syscall count failed: {e}");
                    ok = false;
                }
            }
        }
        let _ = writeln!(out, "\n{} (under strace)\n\n{table}", cell.title());
        let _ = out.flush();
    }
    ok
}
