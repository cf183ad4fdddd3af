//! TCP echo, side by side: loom (io_uring and epoll backends), tokio
//! (`current_thread`), monoio (io_uring driver), may (one worker) and two
//! floors with no runtime at all (`raw-io_uring`, `raw-epoll`), all driven
//! by the same load generator.
//!
//! ```text
//! cargo run --release -p loom-benches --bin echo -- [OPTIONS]
//!
//!   --impl a,b,..   servers to run (default: loom-io_uring,loom-epoll,tokio,monoio,may,
//!                   raw-io_uring,raw-epoll; also loom-io_uring-balanced,
//!                   loom-epoll-balanced, see --server-threads)
//!   --msg  n,..     message sizes in bytes (default: 64,4096)
//!   --conns n,..    connection counts (default: 1,16,256; 256 with --strace)
//!   --secs s        measured window per measurement (default: 1)
//!   --warmup s      warm-up before each window (default: 0.25)
//!   --rounds n      rounds (default: 5)
//!   --retries n     re-measurements of a noisy sample (default: 3)
//!   --server-threads n  threads per server (default: 1; see below)
//!   --quick         smoke run: --secs 0.2 --warmup 0.05 --rounds 1 --retries 0
//!   --strace        count server syscalls per message instead (needs strace)
//!   --idle-rss n    measure resident memory per idle connection instead
//! ```
//!
//! Each measurement starts a fresh server process — this binary re-executed
//! as `echo --server <impl>`, which pins itself to CPU 0, binds
//! `127.0.0.1:0` and prints `port=<n>` on stdout — opens the connections
//! from this process (pinned to CPU 1; in batches of 256, each batch
//! connected and echoing one message before the next connects, so even
//! 10 000 connections never overflow the server's accept queue; this
//! connection phase is not measured), runs every connection's closed loop
//! (send a message, read back the whole echo, compare it byte for byte,
//! send the next) for the warm-up and then for the measured window, and
//! kills the server. Rounds alternate the servers: in every round each
//! cell (message size x connections) measures every server once, in an
//! order rotated by one each round. The median per cell is reported, one
//! line per cell and server on stdout:
//!
//! ```text
//! bench=echo impl=<impl> msg=<bytes> conns=<n> msgs_per_s=<f> server_cpu_us_per_msg=<f>
//!   ratio_vs_tokio=<f> p50_us=<f> p99_us=<f> max_us=<f> conn_min_msgs=<f>
//!   conn_median_msgs=<f> cpu_vs_raw_io_uring=<f> cpu_vs_raw_epoll=<f>
//! ```
//!
//! (one line; wrapped here).
//!
//! `server_cpu_us_per_msg` is the server process's own CPU time over the
//! window — the sum of `/proc/<pid>/task/*/schedstat`'s first field, read
//! before and after — divided by the echoes completed in it.
//! `ratio_vs_tokio` is this server's median `msgs_per_s` over tokio's in the
//! same cell (`NaN` when tokio was not run). `cpu_vs_raw_io_uring` and
//! `cpu_vs_raw_epoll` are this server's median `server_cpu_us_per_msg`
//! over that floor's in the same cell (`NaN` when the floor was not run):
//! the runtime's overhead over what the kernel allows, 1.0 being none.
//! Progress, per-measurement figures (including the server's and the
//! client's CPU utilisation) and errors go to stderr, and so does, at the
//! end, a table of the medians per cell (msgs/s, server CPU µs/msg, p99,
//! the slowest connection's count, and the CPU per message as a percentage
//! above each floor). A server that fails to start is skipped for the
//! rest of the run, with its error printed.
//!
//! Latency and fairness, from the client, over the measured window only:
//! `p50_us`, `p99_us` and `max_us` are round-trip times — from just before
//! the first byte of a message is written to the read that completes its
//! echo — in µs, recorded in a fixed log-linear histogram (1 µs buckets
//! below 128 µs, then 64 buckets per power of two: under 1.6% error, up
//! to 10 s; `max_us` is exact). `conn_min_msgs` and `conn_median_msgs` are
//! the fewest and the median echoes any one connection completed in the
//! window: a server that starves some connections shows a `conn_min_msgs`
//! far below `conn_median_msgs` (0: a connection got nothing). Each of
//! these five figures is, like the others, the median over the rounds of
//! that figure (taken independently per figure, so they may come from
//! different rounds); with `--rounds 1` they are that round's.
//!
//! Up to 10 000 connections and more: the harness raises its soft
//! `RLIMIT_NOFILE` to the hard limit before starting any server (servers
//! inherit it, and raise their own again), and stops with a message naming
//! the limit if the hard limit is below the largest `--conns` (or
//! `--idle-rss`) plus 64. Every server copes with 10 000 connections:
//! loom is built with an explicit fiber limit and a ring sized for them
//! (see the servers module), the others need nothing. The client needs
//! one fd per connection too, and one ephemeral port each (Linux's default
//! range has about 28 000).
//!
//! The floors, `raw-io_uring` and `raw-epoll` (see the `floor` module):
//! the same echo server written straight on the `io-uring` crate (one
//! `io_uring_enter` per loop turn submitting everything queued) and on
//! libc epoll (edge-triggered, non-blocking, one `epoll_wait` per turn),
//! single-threaded, a 16 KiB buffer per connection, no registered buffers
//! or files. They run like every other server (own process, CPU 0); with
//! `--server-threads` > 1 they are skipped.
//!
//! The machine may be shared. Before each measurement the harness waits
//! (up to 3 s) for CPUs 0 and 1 to be idle, and after it works out how
//! much of those CPUs went to anything but the server and the client
//! ("other load", from `/proc/stat`, printed on stderr). A window with more
//! than 10% other load is noisy: it is measured again (`--retries`) and the
//! quietest attempt kept; samples that stayed noisy are counted at the end.
//! Neighbours depress `msgs_per_s` far more than `server_cpu_us_per_msg`.
//!
//! With `--server-threads N` (N > 1) each server runs N threads (tokio: a
//! `multi_thread` runtime with N workers; monoio: N threads, each its own
//! runtime and its own `SO_REUSEPORT` listener on the same port; may: N
//! workers; loom: N loops with an `SO_REUSEPORT` listener each, see
//! `loom_multi_loop_server` in the servers module; `loom-*-balanced`: N
//! loops and one listener whose connections `TcpListener::serve_balanced`
//! hands to the least-loaded loop, see `loom_balanced_server`) and
//! is not pinned to one CPU: it may run on CPUs `0..N`, which include the
//! load generator's CPU 1, so the client shares those cores with the
//! server (a note on stderr says so). Result lines then carry
//! `server_threads=<N>` after `conns=`, and "other load" is measured over
//! CPUs `0..N`. An impl that cannot run with N threads (yet) is skipped,
//! with one line on stdout:
//!
//! ```text
//! skip impl=<impl> reason=<rest of the line>
//! ```
//!
//! With N = 1 (the default) nothing of this applies and the output is as
//! described above.
//!
//! With `--strace`, each server instead runs the warm-up, is let go idle
//! (the client stops sending and collects the outstanding echoes), gets
//! `strace -c -f -p <pid>` attached, and then serves one window of load
//! that again ends with the client collecting every outstanding echo;
//! strace is detached and the syscalls it counted are divided by the
//! echoes of that window:
//!
//! ```text
//! bench=echo_syscalls impl=<impl> msg=<bytes> conns=<n> syscalls_per_msg=<f>
//! ```
//!
//! (the per-syscall breakdown goes to stderr). strace slows every syscall
//! down a lot, so a traced server finds more work per `epoll_wait` /
//! `io_uring_enter` than it would untraced: the counts of reads and writes
//! are exact, the counts of waits (and so every io_uring figure) a floor.
//!
//! With `--idle-rss N`, instead of throughput: for each impl a server (one
//! thread) is started, left 200 ms to settle, its resident memory read
//! (`Rss` of `/proc/<pid>/smaps_rollup`, or `VmRSS` of its `status`); then
//! N connections are opened exactly as for a measurement (so every one
//! has echoed one 64-byte message: its task / fiber has run and touched
//! its buffer), left idle 200 ms, and the RSS read again:
//!
//! ```text
//! bench=echo_idle_rss impl=<impl> conns=<N> rss_kib_per_conn=<f>
//! ```
//!
//! (the RSS difference over N; both readings go to stderr). The client's
//! own memory is not included; the kernel's socket buffers are not in any
//! process's RSS.
//!
//! Reading the numbers: the client costs about as much CPU per message as
//! a server (one `write`, one `read` and a share of an `epoll_wait`; on
//! loopback the kernel's TCP delivery work is charged to the sender), so
//! from 16 connections up both CPUs are saturated and `msgs_per_s` is
//! bounded by the client as well as by the server. `server_cpu_us_per_msg`
//! is the figure that isolates the server. With one connection both sides
//! sleep every round trip, and the wake-up latency dominates.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::collections::HashSet;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use loom_benches::echo::client::{Client, WindowStats};
use loom_benches::echo::strace::Strace;
use loom_benches::echo::{CLIENT_CPU, Impl, bench_cpus, server_cpus, servers, sys};
use loom_benches::harness::{
    Extras, Failure, Measurement, Medians, ServerProcess, Table, Window, parse_list, parse_num,
    report_port, retry_quietly, run_rounds, wait_quiet,
};

/// How long strace gets to attach before the measurement is abandoned.
const STRACE_ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors a process needs besides one per connection (stdio,
/// the epoll / io_uring instances, pipes, `/proc` reads, the listener).
const SPARE_FDS: u64 = 64;

/// How long `--idle-rss` lets the server settle before reading its RSS
/// again.
const IDLE_SETTLE: Duration = Duration::from_millis(200);

/// Size of the one message `--idle-rss` sends on every connection.
const IDLE_MSG: usize = 64;

/// The client's window figures that go on result lines, in order.
const WINDOW_FIELDS: [&str; 5] = [
    "p50_us",
    "p99_us",
    "max_us",
    "conn_min_msgs",
    "conn_median_msgs",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--server") {
        let threads = match args.get(2..) {
            Some([flag, n]) if flag == "--threads" => n.parse().unwrap_or(0),
            _ => 1,
        };
        return server_main(args.get(1).map(String::as_str).unwrap_or(""), threads);
    }
    let opts = match Options::parse(&args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("echo: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sys::pin_current_thread(CLIENT_CPU) {
        eprintln!("echo: {e}");
        return ExitCode::from(2);
    }
    // Before any server is spawned: they inherit the raised limit.
    let most_conns = opts.conns.iter().copied().chain(opts.idle_rss).max();
    if let Err(e) = sys::raise_nofile(most_conns.unwrap_or(0) as u64 + SPARE_FDS) {
        eprintln!("echo: {e}");
        return ExitCode::from(2);
    }
    if opts.server_threads > 1 {
        let n = opts.server_threads;
        eprintln!(
            "note: --server-threads {n}: the servers are not pinned to one CPU; they run on \
             CPUs 0-{}, and the load generator (pinned to CPU {CLIENT_CPU}) shares those {n} \
             cores with them",
            n - 1
        );
    }
    let ok = if let Some(conns) = opts.idle_rss {
        run_idle_rss(&opts, conns)
    } else if opts.strace {
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

const USAGE: &str = "usage: echo [--impl a,b] [--msg 64,4096] [--conns 1,16,256] [--secs S] \
[--warmup S] [--rounds N] [--retries N] [--server-threads N] [--quick] [--strace] \
[--idle-rss N]
       echo --server <impl> [--threads N]   (internal: run one server)
impls: loom-io_uring, loom-epoll, tokio, monoio, may, raw-io_uring, raw-epoll,
       loom-io_uring-balanced, loom-epoll-balanced";

// -------------------------------------------------------------- options ----

/// Command-line options of the harness.
#[derive(Debug)]
struct Options {
    impls: Vec<Impl>,
    msgs: Vec<usize>,
    conns: Vec<usize>,
    secs: f64,
    warmup: f64,
    rounds: usize,
    retries: usize,
    strace: bool,
    /// Threads per server process (`--server-threads`).
    server_threads: usize,
    /// `--idle-rss N`: measure resident memory per idle connection instead.
    idle_rss: Option<usize>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut impls = Impl::ALL.to_vec();
        let mut msgs = vec![64, 4096];
        let mut conns = None;
        let (mut secs, mut warmup, mut rounds, mut retries) = (None, None, None, None);
        let mut server_threads = 1;
        let mut quick = false;
        let mut strace = false;
        let mut idle_rss = None;
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
                "--impl" => impls = parse_list(&value()?)?,
                "--msg" => msgs = parse_list(&value()?)?,
                "--conns" => conns = Some(parse_list(&value()?)?),
                "--secs" => secs = Some(parse_num::<f64>(flag, &value()?)?),
                "--warmup" => warmup = Some(parse_num::<f64>(flag, &value()?)?),
                "--rounds" => rounds = Some(parse_num::<usize>(flag, &value()?)?),
                "--retries" => retries = Some(parse_num::<usize>(flag, &value()?)?),
                "--server-threads" => server_threads = parse_num::<usize>(flag, &value()?)?,
                "--quick" => quick = true,
                "--strace" => strace = true,
                "--idle-rss" => idle_rss = Some(parse_num::<usize>(flag, &value()?)?),
                "-h" | "--help" => return Err("help".into()),
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        let opts = Options {
            impls,
            msgs,
            conns: conns.unwrap_or_else(|| if strace { vec![256] } else { vec![1, 16, 256] }),
            secs: secs.unwrap_or(if quick { 0.2 } else { 1.0 }),
            warmup: warmup.unwrap_or(if quick { 0.05 } else { 0.25 }),
            rounds: rounds.unwrap_or(if quick || strace { 1 } else { 5 }),
            retries: retries.unwrap_or(if quick { 0 } else { 3 }),
            strace,
            server_threads,
            idle_rss,
        };
        if opts.idle_rss == Some(0) {
            return Err("--idle-rss needs a positive number of connections".into());
        }
        if opts.impls.is_empty() || opts.msgs.is_empty() || opts.conns.is_empty() {
            return Err("--impl, --msg and --conns need at least one value".into());
        }
        if opts.msgs.contains(&0) || opts.conns.contains(&0) {
            return Err("message sizes and connection counts must be positive".into());
        }
        if !(opts.secs > 0.0 && opts.warmup >= 0.0 && opts.rounds > 0) {
            return Err("--secs and --rounds must be positive, --warmup not negative".into());
        }
        let cpus = sys::online_cpus();
        if !(1..=cpus).contains(&opts.server_threads) {
            return Err(format!(
                "--server-threads must be between 1 and the {cpus} online CPUs"
            ));
        }
        Ok(opts)
    }

    /// Every (message size, connections) cell, in output order.
    fn cells(&self) -> Vec<(usize, usize)> {
        let mut cells = Vec::new();
        for &msg in &self.msgs {
            for &conns in &self.conns {
                cells.push((msg, conns));
            }
        }
        cells
    }
}

// --------------------------------------------------------------- server ----

/// `echo --server <impl> [--threads N]`: pin to the server's CPUs
/// ([`server_cpus`]: CPU 0 alone for one thread; before any runtime starts
/// a thread, so every thread inherits the mask) and serve until killed.
/// An impl that cannot run with `threads` threads prints
/// `skip reason=<why>` instead of its port.
fn server_main(name: &str, threads: usize) -> ExitCode {
    let imp: Impl = match name.parse() {
        Ok(imp) => imp,
        Err(e) => {
            eprintln!("echo --server: {e}");
            return ExitCode::from(2);
        }
    };
    if threads == 0 {
        eprintln!("echo --server {imp}: --threads needs a positive number");
        return ExitCode::from(2);
    }
    if let Err(e) = sys::pin_current_thread_to(&server_cpus(threads)) {
        eprintln!("echo --server {imp}: {e}");
        return ExitCode::from(2);
    }
    // Inherited from the harness already; raised again for a server run by
    // hand. One fd per connection: the harness checked the hard limit.
    if let Err(e) = sys::raise_nofile(0) {
        eprintln!("echo --server {imp}: {e}");
        return ExitCode::from(2);
    }
    match servers::serve(imp, threads, report_port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "skip reason={e}");
            let _ = out.flush();
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("echo --server {imp}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts `echo --server <imp>` (with `--threads <threads>` if more than
/// one) and waits for its port; [`Failure::Skip`] if the server says it
/// cannot run with that many threads.
fn start_server(imp: Impl, threads: usize) -> Result<ServerProcess, Failure> {
    let mut args = vec!["--server".to_owned(), imp.name().to_owned()];
    if threads > 1 {
        args.extend(["--threads".to_owned(), threads.to_string()]);
    }
    ServerProcess::spawn(&args, false).map_err(Failure::start)
}

// ----------------------------------------------------------- throughput ----

/// The client's window figures as [`Extras`] named [`WINDOW_FIELDS`].
fn window_extras(w: WindowStats) -> Extras {
    let mut extras = Extras::default();
    let values = [
        w.p50_us,
        w.p99_us,
        w.max_us,
        w.conn_min_msgs,
        w.conn_median_msgs,
    ];
    for (name, value) in WINDOW_FIELDS.into_iter().zip(values) {
        extras.set(name, value);
    }
    extras
}

fn measure(imp: Impl, msg: usize, conns: usize, opts: &Options) -> Result<Measurement, Failure> {
    let cpus = bench_cpus(opts.server_threads);
    wait_quiet(&cpus).map_err(Failure::Run)?;
    let server = start_server(imp, opts.server_threads)?;
    let pid = server.pid();
    let run = || -> io::Result<Measurement> {
        let connecting = Instant::now();
        let mut client = Client::connect(server.addr(), conns, msg)?;
        if conns >= 1000 {
            eprintln!(
                "  {imp}: {conns} connections in {:.2} s",
                connecting.elapsed().as_secs_f64()
            );
        }
        client.start()?;
        client.run_until_instant(Instant::now() + Duration::from_secs_f64(opts.warmup))?;
        let n0 = client.completed();
        client.reset_window();
        let window = Window::begin(pid, &cpus)?;
        client.run_until_instant(window.start() + Duration::from_secs_f64(opts.secs))?;
        let mut m = window.end(client.completed() - n0, &imp)?;
        m.extras = window_extras(client.window_stats());
        Ok(m)
    };
    run().map_err(Failure::Run)
}

/// `<this row's server CPU per message> / <the floor's>`, both medians in
/// the same cell; NaN when the floor has no figure there.
fn vs_floor(cpu: f64, floor: Option<&Medians>) -> f64 {
    floor.map_or(f64::NAN, |f| cpu / f.server_cpu_us_per_op)
}

/// `+12%`-style overhead of `ratio` (1.12), or `-` for NaN.
fn percent_above(ratio: f64) -> String {
    if ratio.is_nan() {
        "-".to_owned()
    } else {
        format!("{:+.0}%", (ratio - 1.0) * 100.0)
    }
}

fn run_throughput(opts: &Options) -> bool {
    let cells = opts.cells();
    let rounds = run_rounds(
        opts.rounds,
        &opts.impls,
        &cells,
        |&(msg, conns)| format!("msg={msg} conns={conns}"),
        |imp, (msg, conns), label| {
            retry_quietly(opts.retries, label, "msg", || {
                measure(imp, msg, conns, opts)
            })
        },
        print_skip,
    );
    let skipped = rounds.skipped.len();
    let noisy = rounds.noisy;

    if noisy > 0 {
        eprintln!(
            "note: {noisy} sample(s) stayed noisy after {} retries; \
             their msgs_per_s is low",
            opts.retries
        );
    }
    let threads = threads_field(opts);
    let mut out = io::stdout().lock();
    let mut printed = 0;
    let mut table = Table::new(&[
        "cell",
        "impl",
        "msgs/s",
        "cpu us/msg",
        "p99 us",
        "conn min",
        "vs raw-io_uring",
        "vs raw-epoll",
    ])
    .left(1);
    for &(msg, conns) in &cells {
        let cell = (msg, conns);
        let tokio = rounds
            .medians(Impl::Tokio, cell)
            .map_or(f64::NAN, |m| m.ops_per_s);
        let uring = rounds.medians(Impl::RawIoUring, cell);
        let epoll = rounds.medians(Impl::RawEpoll, cell);
        for &imp in &opts.impls {
            let Some(m) = rounds.medians(imp, cell) else {
                continue;
            };
            let (rate, cpu) = (m.ops_per_s, m.server_cpu_us_per_op);
            let vs_uring = vs_floor(cpu, uring.as_ref());
            let vs_epoll = vs_floor(cpu, epoll.as_ref());
            let window: String = WINDOW_FIELDS
                .iter()
                .map(|&name| {
                    let v = m.extras.get(name).unwrap_or(f64::NAN);
                    format!(" {name}={v:.1}")
                })
                .collect();
            let _ = writeln!(
                out,
                "bench=echo impl={imp} msg={msg} conns={conns}{threads} msgs_per_s={rate:.1} \
                 server_cpu_us_per_msg={cpu:.3} ratio_vs_tokio={:.3}{window} \
                 cpu_vs_raw_io_uring={vs_uring:.3} cpu_vs_raw_epoll={vs_epoll:.3}",
                rate / tokio
            );
            let extra = |name| {
                m.extras
                    .get(name)
                    .map_or("-".to_owned(), |v| format!("{v:.0}"))
            };
            table.row(vec![
                format!("msg={msg} conns={conns}"),
                imp.to_string(),
                format!("{rate:.0}"),
                format!("{cpu:.2}"),
                extra("p99_us"),
                extra("conn_min_msgs"),
                percent_above(vs_uring),
                percent_above(vs_epoll),
            ]);
            printed += 1;
        }
    }
    let _ = out.flush();
    // The human summary goes to stderr: stdout stays one result per line.
    eprintln!("\nmedians; \"vs raw-*\": server CPU per message above that floor's\n{table}");
    printed == cells.len() * (opts.impls.len() - skipped)
}

// ------------------------------------------------------------- idle RSS ----

/// Resident memory per idle connection of `imp`, in KiB: RSS after `conns`
/// connections each echoed one message and went idle, less RSS before
/// they connected, over `conns`.
fn idle_rss(imp: Impl, conns: usize) -> Result<f64, Failure> {
    let server = start_server(imp, 1)?;
    let pid = server.pid();
    let run = || -> io::Result<f64> {
        // Let the server finish starting up (threads, rings, first pages).
        std::thread::sleep(IDLE_SETTLE);
        let before = sys::rss_kib(pid)?;
        // Connecting echoes one message on every connection.
        let client = Client::connect(server.addr(), conns, IDLE_MSG)?;
        std::thread::sleep(IDLE_SETTLE);
        let after = sys::rss_kib(pid)?;
        eprintln!("{imp}: RSS {before} KiB, {after} KiB with {conns} idle connections");
        drop(client);
        Ok((after as f64 - before as f64) / conns as f64)
    };
    run().map_err(Failure::Run)
}

fn run_idle_rss(opts: &Options, conns: usize) -> bool {
    let mut ok = true;
    for &imp in &opts.impls {
        match idle_rss(imp, conns) {
            Ok(kib) => {
                let mut out = io::stdout().lock();
                let _ = writeln!(
                    out,
                    "bench=echo_idle_rss impl={imp} conns={conns} rss_kib_per_conn={kib:.2}"
                );
                let _ = out.flush();
            }
            Err(Failure::Skip(reason)) => print_skip(imp, &reason),
            Err(Failure::Start(e) | Failure::Run(e)) => {
                eprintln!("{imp}: idle RSS measurement failed: {e}");
                ok = false;
            }
        }
    }
    ok
}

/// ` server_threads=<N>` for result lines when N > 1, else nothing.
fn threads_field(opts: &Options) -> String {
    if opts.server_threads > 1 {
        format!(" server_threads={}", opts.server_threads)
    } else {
        String::new()
    }
}

/// The stdout line for an impl skipped because it cannot run with
/// `--server-threads` threads.
fn print_skip(imp: Impl, reason: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "skip impl={imp} reason={reason}");
    let _ = out.flush();
}

// --------------------------------------------------------------- strace ----

/// Syscalls per echo (total, and the per-syscall breakdown) for one server.
fn count_syscalls(
    imp: Impl,
    msg: usize,
    conns: usize,
    opts: &Options,
) -> Result<(f64, Vec<(String, f64)>), Failure> {
    let server = start_server(imp, opts.server_threads)?;
    let pid = server.pid();
    let run = || -> io::Result<(f64, Vec<(String, f64)>)> {
        let mut client = Client::connect(server.addr(), conns, msg)?;
        client.start()?;
        client.run_until_instant(Instant::now() + Duration::from_secs_f64(opts.warmup))?;
        // Attach to a quiescent server, so the count covers exactly the
        // syscalls made for the echoes counted (plus a few idle wake-ups).
        client.drain()?;
        let output =
            std::env::temp_dir().join(format!("loom-echo-strace-{}-{pid}.txt", std::process::id()));
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
        let per_msg = |calls: u64| calls as f64 / n;
        let total = counts.last().map_or(0, |c| c.calls);
        let mut breakdown: Vec<(String, f64)> = counts
            .iter()
            .filter(|c| c.name != "total")
            .map(|c| (c.name.clone(), per_msg(c.calls)))
            .collect();
        breakdown.sort_by(|a, b| b.1.total_cmp(&a.1));
        eprintln!("{imp} msg={msg} conns={conns}: {n} echoes while attached");
        Ok((per_msg(total), breakdown))
    };
    run().map_err(Failure::Run)
}

fn run_strace(opts: &Options) -> bool {
    let mut ok = true;
    let mut broken: HashSet<Impl> = HashSet::new();
    let threads = threads_field(opts);
    for (msg, conns) in opts.cells() {
        for &imp in &opts.impls {
            if broken.contains(&imp) {
                continue;
            }
            match count_syscalls(imp, msg, conns, opts) {
                Ok((total, breakdown)) => {
                    let top: Vec<String> = breakdown
                        .iter()
                        .take(8)
                        .map(|(name, n)| format!("{name}={n:.3}"))
                        .collect();
                    eprintln!("  per msg: {}", top.join(" "));
                    let mut out = io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "bench=echo_syscalls impl={imp} msg={msg} conns={conns}{threads} \
                         syscalls_per_msg={total:.3}"
                    );
                    let _ = out.flush();
                }
                Err(Failure::Skip(reason)) => {
                    print_skip(imp, &reason);
                    broken.insert(imp);
                }
                Err(Failure::Start(e)) => {
                    eprintln!("{imp}: server failed to start, skipping it: {e}");
                    broken.insert(imp);
                    ok = false;
                }
                Err(Failure::Run(e)) => {
                    eprintln!("{imp} msg={msg} conns={conns}: syscall count failed: {e}");
                    ok = false;
                }
            }
        }
    }
    ok
}
