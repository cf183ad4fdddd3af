//! What the side-by-side server benchmarks (`echo`, `http`) share: one
//! server process per measurement pinned to [`SERVER_CPU`], the load
//! generator in the harness pinned to [`CLIENT_CPU`], the server's CPU
//! time from its own `schedstat`, rounds that alternate the servers,
//! medians, and a table printer.
//!
//! * [`sys`] — CPU pinning, CPU time and resident memory from `/proc`,
//!   raising `RLIMIT_NOFILE`.
//! * [`strace`] — counting a running server's syscalls with `strace -c`.
//! * [`ServerProcess`] — this binary re-executed as `<bin> --server <impl>`,
//!   which pins itself, binds `127.0.0.1:0` and prints `port=<n>`
//!   ([`report_port`]); killed on drop.
//! * [`Window`] — CPU and wall clock sampled around one measured window,
//!   turned into a [`Measurement`] (which a bench may extend with its own
//!   figures, [`Extras`], reported as medians like the rest).
//! * [`retry_quietly`] / [`run_rounds`] — re-measuring noisy windows, and
//!   rounds that measure every server once per cell in a rotating order.

pub mod strace;
pub mod sys;

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Display};
use std::hash::Hash;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// CPU the server process is pinned to (with one server thread).
pub const SERVER_CPU: usize = 0;
/// CPU the load generator (the harness process) is pinned to.
pub const CLIENT_CPU: usize = 1;

/// CPUs a server with `threads` threads may run on: [`SERVER_CPU`] alone
/// for one thread; CPUs `0..threads` otherwise, which include
/// [`CLIENT_CPU`], so the load generator shares them with the server.
pub fn server_cpus(threads: usize) -> Vec<usize> {
    if threads <= 1 {
        vec![SERVER_CPU]
    } else {
        (0..threads).collect()
    }
}

/// The CPUs a measurement involves: the server's and the client's.
pub fn bench_cpus(threads: usize) -> Vec<usize> {
    let mut cpus = server_cpus(threads);
    if !cpus.contains(&CLIENT_CPU) {
        cpus.push(CLIENT_CPU);
    }
    cpus
}

/// Share of the benchmark CPUs taken by anything but the server and the
/// client above which a measurement is noisy (and re-measured).
pub const NOISY: f64 = 0.1;

/// How long a measurement waits for the machine to go quiet.
pub const QUIET_TIMEOUT: Duration = Duration::from_secs(3);

/// Waits (up to [`QUIET_TIMEOUT`]) until the benchmark CPUs `cpus` are idle
/// for 100 ms; other sessions' builds and tests share this machine.
pub fn wait_quiet(cpus: &[usize]) -> io::Result<()> {
    let deadline = Instant::now() + QUIET_TIMEOUT;
    let step = Duration::from_millis(100);
    while Instant::now() < deadline {
        let busy0 = sys::cpus_busy_ns(cpus)?;
        std::thread::sleep(step);
        let busy = sys::cpus_busy_ns(cpus)? - busy0;
        if (busy as f64) < NOISY * step.as_nanos() as f64 {
            return Ok(());
        }
    }
    eprintln!("  note: the CPUs stayed busy for {QUIET_TIMEOUT:?}; measuring anyway");
    Ok(())
}

// --------------------------------------------------------------- server ----

/// Tells the harness the port: one `port=<n>` line on stdout (the server
/// side of [`ServerProcess::spawn`]).
pub fn report_port(port: u16) {
    let mut out = io::stdout().lock();
    // If the harness is gone there is nobody to tell; it kills us anyway.
    let _ = writeln!(out, "port={port}");
    let _ = out.flush();
}

/// A server process (this binary re-executed with server arguments),
/// killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    /// The server's stdout after its `port=` line, for [`Self::query`].
    stdout: BufReader<ChildStdout>,
    /// The server's stdin, when started with a control channel.
    stdin: Option<ChildStdin>,
}

impl ServerProcess {
    /// Starts this executable with `args` and waits for the `port=<n>` line
    /// it prints on stdout once it listens on `127.0.0.1:<n>`. With
    /// `control`, its stdin is a pipe that [`Self::query`] writes to;
    /// otherwise it is `/dev/null`.
    ///
    /// # Errors
    ///
    /// Kind [`io::ErrorKind::Unsupported`] (message: the reason) if the
    /// server printed `skip reason=<why>` instead of a port; any other
    /// error if it failed to start or died first.
    pub fn spawn(args: &[String], control: bool) -> io::Result<ServerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(if control {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let read = stdout.read_line(&mut line);
        let port = line
            .trim()
            .strip_prefix("port=")
            .and_then(|p| p.parse::<u16>().ok());
        match (read, port) {
            (Ok(_), Some(port)) => Ok(ServerProcess {
                stdin: child.stdin.take(),
                child,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                stdout,
            }),
            (Ok(_), None) if line.starts_with("skip reason=") => {
                let _ = child.kill();
                let _ = child.wait();
                let reason = line.trim().trim_start_matches("skip reason=");
                Err(io::Error::new(io::ErrorKind::Unsupported, reason))
            }
            (read, _) => {
                let _ = child.kill();
                let status = child.wait()?;
                Err(io::Error::other(format!(
                    "server did not report a port ({status}; read: {:?}, line: {line:?})",
                    read.err()
                )))
            }
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `request` as one line on the server's stdin and returns the
    /// line it answers on stdout (trimmed).
    ///
    /// # Errors
    ///
    /// If the process was spawned without `control`, or the pipe broke.
    pub fn query(&mut self, request: &str) -> io::Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("the server has no control channel"))?;
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed its stdout",
            ));
        }
        Ok(line.trim().to_owned())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----------------------------------------------------------- measuring ----

/// Why a measurement failed.
#[derive(Debug)]
pub enum Failure {
    /// The server cannot run this way (yet): skip this impl from now on,
    /// with this reason.
    Skip(String),
    /// The server did not come up: skip this impl from now on.
    Start(io::Error),
    /// Anything later: drop this sample only.
    Run(io::Error),
}

impl Failure {
    /// Classifies an error of [`ServerProcess::spawn`]: the server's own
    /// "cannot run like this" ([`io::ErrorKind::Unsupported`]) is a
    /// [`Failure::Skip`], anything else [`Failure::Start`].
    pub fn start(e: io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::Unsupported => Failure::Skip(e.to_string()),
            _ => Failure::Start(e),
        }
    }
}

/// One measured window.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Operations (messages, requests) completed per second.
    pub ops_per_s: f64,
    /// Server CPU time per operation, in microseconds.
    pub server_cpu_us_per_op: f64,
    /// Server CPU time over wall time (1.0 = one CPU fully busy).
    pub server_util: f64,
    /// Client thread CPU time over wall time (1.0 = client saturated).
    pub client_util: f64,
    /// CPU time of everything else on the benchmark CPUs over wall time
    /// (other processes, interrupts, steal).
    pub other_util: f64,
    /// Threads the server process had at the end of the window.
    pub server_threads: usize,
    /// Heap allocations the server made per operation, where measured.
    pub allocs_per_op: Option<f64>,
    /// Bench-specific figures of this window (e.g. latency percentiles),
    /// reported as medians over the samples like the others.
    pub extras: Extras,
}

/// The most [`Extras`] one measurement can carry.
pub const MAX_EXTRAS: usize = 8;

/// A measurement's bench-specific figures: up to [`MAX_EXTRAS`] named
/// values, in insertion order. Plain data (`Copy`), so a [`Measurement`]
/// stays cheap to keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    items: [(&'static str, f64); MAX_EXTRAS],
    len: usize,
}

impl Extras {
    /// Adds (or replaces) the figure `name`.
    ///
    /// # Panics
    ///
    /// If it would be the `MAX_EXTRAS + 1`-th figure.
    pub fn set(&mut self, name: &'static str, value: f64) {
        if let Some(item) = self.items[..self.len].iter_mut().find(|(n, _)| *n == name) {
            item.1 = value;
            return;
        }
        assert!(self.len < MAX_EXTRAS, "more than {MAX_EXTRAS} extras");
        self.items[self.len] = (name, value);
        self.len += 1;
    }

    /// The figure `name`, if set.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every figure, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.items[..self.len].iter().copied()
    }
}

/// The clocks sampled at the start of one measured window: wall time, the
/// server process's CPU time (the sum of its threads' `schedstat`), the
/// calling (client) thread's, and the benchmark CPUs' busy time.
#[derive(Debug)]
pub struct Window {
    pid: u32,
    cpus: Vec<usize>,
    threads: usize,
    busy0: u64,
    server0: u64,
    client0: u64,
    start: Instant,
}

impl Window {
    /// Starts a window over server process `pid`, on benchmark CPUs
    /// `cpus`. Call it on the thread that drives the load.
    pub fn begin(pid: u32, cpus: &[usize]) -> io::Result<Window> {
        let threads = sys::thread_count(pid)?;
        let busy0 = sys::cpus_busy_ns(cpus)?;
        let server0 = sys::process_cpu_ns(pid)?;
        let client0 = sys::thread_cpu_ns()?;
        Ok(Window {
            pid,
            cpus: cpus.to_vec(),
            threads,
            busy0,
            server0,
            client0,
            start: Instant::now(),
        })
    }

    /// When the window started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Ends the window, in which `ops` operations completed; `name` names
    /// the server in a note if its thread count changed.
    pub fn end(self, ops: u64, name: &dyn Display) -> io::Result<Measurement> {
        let wall = self.start.elapsed().as_nanos() as f64;
        let n = ops as f64;
        let client_ns = (sys::thread_cpu_ns()? - self.client0) as f64;
        let server_ns = (sys::process_cpu_ns(self.pid)? - self.server0) as f64;
        let busy_ns = (sys::cpus_busy_ns(&self.cpus)? - self.busy0) as f64;
        let threads_after = sys::thread_count(self.pid)?;
        if threads_after != self.threads {
            eprintln!(
                "  note: {name} went from {} to {threads_after} threads during the window; \
                 CPU time of exited threads is not counted",
                self.threads
            );
        }
        Ok(Measurement {
            ops_per_s: n / wall * 1e9,
            server_cpu_us_per_op: server_ns / n / 1000.0,
            server_util: server_ns / wall,
            client_util: client_ns / wall,
            other_util: ((busy_ns - server_ns - client_ns) / wall).max(0.0),
            server_threads: threads_after,
            allocs_per_op: None,
            extras: Extras::default(),
        })
    }
}

/// Runs `measure`, again up to `retries` more times while other load
/// exceeds [`NOISY`]; returns the quietest sample. Prints each attempt on
/// stderr, prefixed with `label`, with rates per `unit` ("msg", "req").
pub fn retry_quietly(
    retries: usize,
    label: &str,
    unit: &str,
    mut measure: impl FnMut() -> Result<Measurement, Failure>,
) -> Result<Measurement, Failure> {
    let mut best: Option<Measurement> = None;
    for attempt in 0..=retries {
        let m = measure()?;
        let noisy = m.other_util > NOISY;
        let allocs = m
            .allocs_per_op
            .map_or_else(String::new, |a| format!(", {a:.2} allocs/{unit}"));
        let extras: String = m.extras.iter().map(|(n, v)| format!(" {n}={v}")).collect();
        eprintln!(
            "{label}: {:>9.0} {unit}/s {:>6.2} us/{unit} server CPU {:>3.0}% ({} threads), \
             client CPU {:>3.0}%, other load {:>3.0}%{allocs}{extras}{}",
            m.ops_per_s,
            m.server_cpu_us_per_op,
            m.server_util * 100.0,
            m.server_threads,
            m.client_util * 100.0,
            m.other_util * 100.0,
            match (noisy, attempt < retries) {
                (false, _) => "",
                (true, true) => "  <- noisy, retrying",
                (true, false) => "  <- noisy",
            },
        );
        if best.is_none_or(|b| m.other_util < b.other_util) {
            best = Some(m);
        }
        if !noisy {
            break;
        }
    }
    Ok(best.expect("at least one attempt"))
}

/// The median of `values` (sorted in place); NaN for none.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Medians over one server's samples in one cell.
#[derive(Debug, Clone, Copy)]
pub struct Medians {
    /// Median operations per second.
    pub ops_per_s: f64,
    /// Median server CPU microseconds per operation.
    pub server_cpu_us_per_op: f64,
    /// Median allocations per operation (NaN where not measured).
    pub allocs_per_op: f64,
    /// Samples the medians are over.
    pub samples: usize,
    /// The median of each of the samples' [`Extras`] (over the samples
    /// that have it), in the first sample's order.
    pub extras: Extras,
}

/// What [`run_rounds`] collected.
#[derive(Debug)]
pub struct Rounds<I, C> {
    samples: HashMap<(I, C), Vec<Measurement>>,
    /// Impls skipped ([`Failure::Skip`]), in the order it happened.
    pub skipped: Vec<I>,
    /// Impls whose server failed to start ([`Failure::Start`]).
    pub broken: Vec<I>,
    /// Measurements that failed after the server started.
    pub failed: usize,
    /// Samples that stayed noisy after every retry.
    pub noisy: usize,
}

impl<I: Copy + Eq + Hash, C: Copy + Eq + Hash> Rounds<I, C> {
    /// The medians of `imp`'s samples in `cell`, if it has any.
    pub fn medians(&self, imp: I, cell: C) -> Option<Medians> {
        let s = self.samples.get(&(imp, cell))?;
        let mut rate: Vec<f64> = s.iter().map(|m| m.ops_per_s).collect();
        let mut cpu: Vec<f64> = s.iter().map(|m| m.server_cpu_us_per_op).collect();
        let mut allocs: Vec<f64> = s.iter().filter_map(|m| m.allocs_per_op).collect();
        let mut extras = Extras::default();
        for m in s {
            for (name, _) in m.extras.iter() {
                if extras.get(name).is_none() {
                    let mut values: Vec<f64> =
                        s.iter().filter_map(|m| m.extras.get(name)).collect();
                    extras.set(name, median(&mut values));
                }
            }
        }
        Some(Medians {
            ops_per_s: median(&mut rate),
            server_cpu_us_per_op: median(&mut cpu),
            allocs_per_op: median(&mut allocs),
            samples: s.len(),
            extras,
        })
    }
}

/// Measures every impl in every cell, `rounds` times. In every round each
/// cell measures every impl once, in an order rotated by one each round,
/// so slow drifts of the machine hit every server alike.
///
/// `measure(imp, cell, label)` takes one sample (`label` names it for
/// stderr); `describe(cell)` names a cell in labels and errors (e.g.
/// `msg=64 conns=16`). An impl that fails to start is dropped for the rest
/// of the run with its error on stderr; one that asks to be skipped is
/// dropped too and `on_skip(imp, reason)` called. Failed measurements are
/// printed and counted.
pub fn run_rounds<I, C>(
    rounds: usize,
    impls: &[I],
    cells: &[C],
    describe: impl Fn(&C) -> String,
    mut measure: impl FnMut(I, C, &str) -> Result<Measurement, Failure>,
    mut on_skip: impl FnMut(I, &str),
) -> Rounds<I, C>
where
    I: Copy + Eq + Hash + Display,
    C: Copy + Eq + Hash,
{
    let mut out = Rounds {
        samples: HashMap::new(),
        skipped: Vec::new(),
        broken: Vec::new(),
        failed: 0,
        noisy: 0,
    };
    let mut dropped: HashSet<I> = HashSet::new();
    for round in 0..rounds {
        let mut order = impls.to_vec();
        let shift = round % order.len().max(1);
        order.rotate_left(shift);
        for &cell in cells {
            let name = describe(&cell);
            for &imp in &order {
                if dropped.contains(&imp) {
                    continue;
                }
                let label = format!("round {}/{rounds} {name} {imp:>13}", round + 1);
                match measure(imp, cell, &label) {
                    Ok(m) => {
                        out.noisy += usize::from(m.other_util > NOISY);
                        out.samples.entry((imp, cell)).or_default().push(m);
                    }
                    Err(Failure::Skip(reason)) => {
                        on_skip(imp, &reason);
                        dropped.insert(imp);
                        out.skipped.push(imp);
                    }
                    Err(Failure::Start(e)) => {
                        eprintln!("{imp}: server failed to start, skipping it: {e}");
                        dropped.insert(imp);
                        out.broken.push(imp);
                    }
                    Err(Failure::Run(e)) => {
                        eprintln!(
                            "round {}/{rounds} {name} {imp}: measurement failed: {e}",
                            round + 1
                        );
                        out.failed += 1;
                    }
                }
            }
        }
    }
    out
}

// -------------------------------------------------------------- options ----

/// Parses `s` as the value of `flag`.
pub fn parse_num<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: cannot parse {s:?} as a number"))
}

/// Parses a comma-separated list (empty items ignored).
pub fn parse_list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String>
where
    T::Err: Display,
{
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.trim().parse().map_err(|e| format!("{p:?}: {e}")))
        .collect()
}

// ---------------------------------------------------------------- table ----

/// A plain-text table: a header row, then rows; the first column is
/// left-aligned, the others right-aligned (they hold numbers) unless
/// marked with [`Table::left`].
#[derive(Debug, Clone)]
pub struct Table {
    rows: Vec<Vec<String>>,
    left: Vec<usize>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: ToString>(headers: &[S]) -> Table {
        Table {
            rows: vec![headers.iter().map(ToString::to_string).collect()],
            left: vec![0],
        }
    }

    /// Left-aligns column `column` (a text column).
    pub fn left(mut self, column: usize) -> Table {
        self.left.push(column);
        self
    }

    /// Appends a row (missing cells print empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width = |c: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        for (i, row) in self.rows.iter().enumerate() {
            let mut line = String::new();
            for (c, &w) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                if c > 0 {
                    line.push_str("  ");
                }
                if self.left.contains(&c) {
                    line.push_str(&format!("{cell:<w$}"));
                } else {
                    line.push_str(&format!("{cell:>w$}"));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
            if i == 0 {
                let rule: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
                writeln!(f, "{}", "-".repeat(rule))?;
            }
        }
        Ok(())
    }
}
