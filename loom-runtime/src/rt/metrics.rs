//! What a running runtime is doing, in numbers: per loop, fibers by state,
//! ops, driver waits, timers, stacks, mail and stalls; for the process, the
//! blocking pool.
//!
//! The counters live in each loop and are written by the loop's thread
//! alone, with plain (relaxed) stores — no locked instruction on the data
//! path. [`metrics`] (in a fiber) or a [`MetricsHandle`] (on any thread)
//! reads them into a [`Metrics`] snapshot, which prints as a table
//! (`Display`) or in the Prometheus text format ([`Metrics::prometheus`]).
//!
//! Each number is exact as the loop last wrote it, but a snapshot is not
//! taken at one instant: while loops run, two numbers may be a few
//! operations apart (`in_flight` is `submitted - completed`, read one after
//! the other). Fibers live, runnable, spawned and finished, timers and
//! stacks are copied out by each loop every 64 turns while it is busy and
//! whenever it parks, so another thread may see them a little behind;
//! read from a fiber, its own loop's are current.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::Backend;
use super::current;
use crate::stats::{LoopStats, WaitKind};

/// A snapshot of every loop of the calling fiber's runtime, and of the
/// blocking pool.
///
/// # Panics
///
/// Outside a loom runtime.
///
/// # Examples
///
/// ```
/// let rt = loom::Runtime::builder().build()?;
/// rt.run(|| {
///     let worker = loom::spawn(|| loom::time::sleep(std::time::Duration::from_millis(5)));
///     let metrics = loom::rt::metrics();
///     assert_eq!(metrics.loops[0].fibers.waiting_timer + metrics.loops[0].fibers.runnable, 1);
///     println!("{metrics}");
///     worker.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn metrics() -> Metrics {
    metrics_handle().snapshot()
}

/// A handle on the calling fiber's runtime's metrics, to read from any
/// thread.
///
/// # Panics
///
/// Outside a loom runtime.
#[track_caller]
pub fn metrics_handle() -> MetricsHandle {
    current::with_current("loom::rt::metrics", |lp| {
        lp.publish_gauges();
        MetricsHandle {
            loops: Arc::clone(&lp.shared.stats),
            backend: lp.driver.backend(),
        }
    })
}

/// Reads a runtime's metrics from any thread: from
/// [`Runtime::metrics`](super::Runtime::metrics) before the runtime runs,
/// or [`metrics_handle`] inside it. Cheap to clone; reading never blocks a
/// loop.
///
/// # Examples
///
/// ```
/// let rt = loom::Runtime::builder().threads(2).build()?;
/// let handle = rt.metrics();
/// let watcher = std::thread::spawn(move || handle.snapshot().loops.len());
/// rt.run(|| ());
/// assert_eq!(watcher.join().unwrap(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    pub(super) loops: Arc<[Arc<LoopStats>]>,
    pub(super) backend: Backend,
}

impl MetricsHandle {
    /// Reads every loop's counters and the blocking pool's state.
    pub fn snapshot(&self) -> Metrics {
        let (threads, idle, queued) = crate::blocking::load();
        Metrics {
            backend: self.backend,
            loops: self
                .loops
                .iter()
                .enumerate()
                .map(|(index, stats)| LoopMetrics::read(index, stats))
                .collect(),
            blocking: BlockingMetrics {
                threads: threads as u64,
                idle: idle as u64,
                queued: queued as u64,
            },
        }
    }
}

/// A snapshot of a runtime's metrics; see the module documentation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Metrics {
    /// The I/O backend of the runtime's loops.
    pub backend: Backend,
    /// One entry per loop, by loop index.
    pub loops: Vec<LoopMetrics>,
    /// The process-wide blocking pool (`loom::unblock`, files on the poll
    /// backends, name resolution).
    pub blocking: BlockingMetrics,
}

/// One loop's numbers. Totals count from the loop's start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopMetrics {
    /// The loop's index.
    pub index: usize,
    /// Fibers by state, and totals.
    pub fibers: FiberMetrics,
    /// Blocking-looking calls that reached the I/O driver.
    pub ops: OpMetrics,
    /// The driver's calls into the kernel.
    pub driver: DriverMetrics,
    /// Timers armed: sleeps, deadlines of ops and waits.
    pub timers_armed: u64,
    /// The loop's stack pool.
    pub stacks: StackMetrics,
    /// Messages from other threads opened: wake-ups, `spawn_on`, blocking
    /// jobs handed back.
    pub mailbox_received: u64,
    /// Stalls the stall monitor reported on this loop
    /// ([`Builder::stall_threshold`](super::Builder::stall_threshold)).
    pub stalls: u64,
}

/// Fibers of one loop by state. `live` is every unfinished fiber: the
/// runnable, the one running (when read from another thread), and the
/// waiting ones by what they wait for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FiberMetrics {
    /// Spawned and not finished.
    pub live: u64,
    /// In the run queue.
    pub runnable: u64,
    /// Waiting for an op: a read, an accept, a file op...
    pub waiting_io: u64,
    /// Sleeping.
    pub waiting_timer: u64,
    /// Waiting on a `loom::sync` primitive or channel.
    pub waiting_sync: u64,
    /// Waiting for another fiber to finish (`join`, a scope).
    pub waiting_join: u64,
    /// Waiting for a job on the blocking pool.
    pub waiting_blocking: u64,
    /// Waiting for something else: a free stack, a future in `block_on`.
    pub waiting_other: u64,
    /// Fibers spawned so far.
    pub spawned: u64,
    /// Fibers finished so far.
    pub finished: u64,
    /// Times the loop resumed a fiber.
    pub switches: u64,
}

/// Ops: each blocking-looking call that reached the I/O driver (on
/// io_uring one submission; on epoll/kqueue an attempt and any waits for
/// readiness).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpMetrics {
    /// Ops started.
    pub submitted: u64,
    /// Ops finished, whatever their result.
    pub completed: u64,
    /// Ops started and not yet returned to their fiber: one per fiber
    /// waiting on I/O, plus one per fiber whose op has completed and that
    /// is runnable but has not run since.
    pub in_flight: u64,
    /// Ops given up on because of cancellation or a passed deadline.
    pub cancelled: u64,
}

/// The I/O driver's calls into the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverMetrics {
    /// Calls that submit or wait: `io_uring_enter`, `epoll_wait`, `kevent`.
    pub waits: u64,
    /// Completions (io_uring) or readiness events (epoll, kqueue) reaped.
    pub completions: u64,
}

impl DriverMetrics {
    /// Completions reaped per call into the kernel (0 before the first).
    pub fn completions_per_wait(&self) -> f64 {
        if self.waits == 0 {
            0.0
        } else {
            self.completions as f64 / self.waits as f64
        }
    }
}

/// A loop's stack pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackMetrics {
    /// Stacks held by fibers (or promised to a spawn that waited).
    pub in_use: u64,
    /// Reserved stacks not in use.
    pub free: u64,
    /// Stacks reserved so far (the pool grows on demand).
    pub reserved: u64,
    /// The most stacks the loop may hold: `max_fibers`, or the budget if
    /// smaller.
    pub limit: u64,
    /// The loop's share of the mapping budget (`None`: no such budget; see
    /// [`stack_budget`](super::stack_budget)).
    pub budget: Option<u64>,
}

/// The blocking pool, process-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockingMetrics {
    /// Worker threads running.
    pub threads: u64,
    /// Of those, the idle ones.
    pub idle: u64,
    /// Jobs waiting for a worker.
    pub queued: u64,
}

impl LoopMetrics {
    fn read(index: usize, stats: &LoopStats) -> LoopMetrics {
        let waiting = |kind| stats.waiting(kind).get();
        // Completed before submitted: a reader racing the loop never sees
        // more completions than submissions.
        let completed = stats.ops_ended.get();
        let submitted = stats.ops_started.get();
        let in_use = stats.stacks_in_use.get();
        let live = stats.live.get();
        let spawned = stats.spawned.get();
        let reserved = stats.stacks_reserved.get();
        LoopMetrics {
            index,
            fibers: FiberMetrics {
                live,
                runnable: stats.runnable.get(),
                waiting_io: waiting(WaitKind::Io),
                waiting_timer: waiting(WaitKind::Timer),
                waiting_sync: waiting(WaitKind::Sync),
                waiting_join: waiting(WaitKind::Join),
                waiting_blocking: waiting(WaitKind::Blocking),
                waiting_other: waiting(WaitKind::Stack) + waiting(WaitKind::Future),
                spawned,
                finished: spawned.saturating_sub(live),
                switches: stats.switches.get(),
            },
            ops: OpMetrics {
                submitted,
                completed,
                in_flight: submitted.saturating_sub(completed),
                cancelled: stats.ops_cancelled.get(),
            },
            driver: DriverMetrics {
                waits: stats.driver_waits.get(),
                completions: stats.driver_events.get(),
            },
            timers_armed: stats.timers.get(),
            stacks: StackMetrics {
                in_use,
                free: reserved.saturating_sub(in_use),
                reserved,
                limit: stats.stack_limit.get(),
                budget: Some(stats.stack_budget.get()).filter(|&b| b != u64::MAX),
            },
            mailbox_received: stats.mail_received.get(),
            stalls: stats.stalls.load(Relaxed),
        }
    }
}

/// What a Prometheus sample is.
#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// One per-loop number: its line in the table and its Prometheus sample.
struct Row {
    /// The table's label (indented labels belong to the row above).
    label: &'static str,
    /// The Prometheus metric name, and one extra label on it.
    name: &'static str,
    extra: Option<(&'static str, &'static str)>,
    kind: Kind,
    help: &'static str,
    get: fn(&LoopMetrics) -> Option<u64>,
}

macro_rules! row {
    ($label:literal, $name:literal $(, $key:literal = $value:literal)?, $kind:ident, $help:literal, |$m:ident| $get:expr) => {
        Row {
            label: $label,
            name: $name,
            extra: row!(@extra $($key, $value)?),
            kind: Kind::$kind,
            help: $help,
            get: |$m: &LoopMetrics| $get,
        }
    };
    (@extra $key:literal, $value:literal) => { Some(($key, $value)) };
    (@extra) => { None };
}

/// Every per-loop number, in table order; rows of one Prometheus name are
/// adjacent.
const ROWS: &[Row] = &[
    row!(
        "fibers live",
        "loom_fibers_live",
        Gauge,
        "Fibers spawned and not finished.",
        |m| Some(m.fibers.live)
    ),
    row!(
        "  runnable",
        "loom_fibers",
        "state" = "runnable",
        Gauge,
        "Unfinished fibers by state.",
        |m| Some(m.fibers.runnable)
    ),
    row!(
        "  waiting on I/O",
        "loom_fibers",
        "state" = "io",
        Gauge,
        "",
        |m| Some(m.fibers.waiting_io)
    ),
    row!(
        "  waiting on a timer",
        "loom_fibers",
        "state" = "timer",
        Gauge,
        "",
        |m| Some(m.fibers.waiting_timer)
    ),
    row!(
        "  waiting on sync",
        "loom_fibers",
        "state" = "sync",
        Gauge,
        "",
        |m| Some(m.fibers.waiting_sync)
    ),
    row!(
        "  waiting on a join",
        "loom_fibers",
        "state" = "join",
        Gauge,
        "",
        |m| Some(m.fibers.waiting_join)
    ),
    row!(
        "  waiting on the pool",
        "loom_fibers",
        "state" = "blocking",
        Gauge,
        "",
        |m| Some(m.fibers.waiting_blocking)
    ),
    row!(
        "  waiting, other",
        "loom_fibers",
        "state" = "other",
        Gauge,
        "",
        |m| Some(m.fibers.waiting_other)
    ),
    row!(
        "fibers spawned",
        "loom_fibers_spawned_total",
        Counter,
        "Fibers spawned.",
        |m| Some(m.fibers.spawned)
    ),
    row!(
        "fibers finished",
        "loom_fibers_finished_total",
        Counter,
        "Fibers finished.",
        |m| Some(m.fibers.finished)
    ),
    row!(
        "fiber switches",
        "loom_fiber_switches_total",
        Counter,
        "Times the loop resumed a fiber.",
        |m| Some(m.fibers.switches)
    ),
    row!(
        "ops submitted",
        "loom_ops_submitted_total",
        Counter,
        "Ops started.",
        |m| Some(m.ops.submitted)
    ),
    row!(
        "ops completed",
        "loom_ops_completed_total",
        Counter,
        "Ops finished.",
        |m| Some(m.ops.completed)
    ),
    row!(
        "ops in flight",
        "loom_ops_in_flight",
        Gauge,
        "Ops started and not finished.",
        |m| Some(m.ops.in_flight)
    ),
    row!(
        "ops cancelled",
        "loom_ops_cancelled_total",
        Counter,
        "Ops given up on: cancellation or a deadline.",
        |m| Some(m.ops.cancelled)
    ),
    row!(
        "driver waits",
        "loom_driver_waits_total",
        Counter,
        "io_uring_enter, epoll_wait or kevent calls.",
        |m| Some(m.driver.waits)
    ),
    row!(
        "driver completions",
        "loom_driver_completions_total",
        Counter,
        "Completions or readiness events reaped.",
        |m| Some(m.driver.completions)
    ),
    row!(
        "timers armed",
        "loom_timers_armed",
        Gauge,
        "Timers armed: sleeps and deadlines.",
        |m| Some(m.timers_armed)
    ),
    row!(
        "stacks in use",
        "loom_stacks",
        "state" = "in_use",
        Gauge,
        "Reserved fiber stacks by state.",
        |m| Some(m.stacks.in_use)
    ),
    row!(
        "stacks free",
        "loom_stacks",
        "state" = "free",
        Gauge,
        "",
        |m| Some(m.stacks.free)
    ),
    row!(
        "stacks reserved",
        "loom_stacks_reserved",
        Gauge,
        "Fiber stacks reserved.",
        |m| Some(m.stacks.reserved)
    ),
    row!(
        "stack limit",
        "loom_stack_limit",
        Gauge,
        "The most stacks the loop may hold.",
        |m| Some(m.stacks.limit)
    ),
    row!(
        "stack budget",
        "loom_stack_budget",
        Gauge,
        "The loop's share of the vm.max_map_count budget.",
        |m| m.stacks.budget
    ),
    row!(
        "mailbox received",
        "loom_mailbox_received_total",
        Counter,
        "Messages from other threads opened.",
        |m| Some(m.mailbox_received)
    ),
    row!(
        "stalls",
        "loom_stalls_total",
        Counter,
        "Stalls the stall monitor reported.",
        |m| Some(m.stalls)
    ),
];

impl Metrics {
    /// The snapshot in the Prometheus text exposition format (version
    /// 0.0.4): one sample per loop (label `loop`) for each per-loop number,
    /// and the blocking pool's.
    ///
    /// # Examples
    ///
    /// ```
    /// let text = loom::Runtime::builder().build()?.run(|| loom::rt::metrics().prometheus());
    /// assert!(text.contains("loom_fibers_live{loop=\"0\"} 1\n"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut previous = "";
        for row in ROWS {
            if row.name != previous {
                previous = row.name;
                let kind = match row.kind {
                    Kind::Gauge => "gauge",
                    Kind::Counter => "counter",
                };
                let _ = writeln!(out, "# HELP {} {}", row.name, row.help);
                let _ = writeln!(out, "# TYPE {} {kind}", row.name);
            }
            for lp in &self.loops {
                let Some(value) = (row.get)(lp) else { continue };
                let _ = write!(out, "{}{{loop=\"{}\"", row.name, lp.index);
                if let Some((key, value)) = row.extra {
                    let _ = write!(out, ",{key}=\"{value}\"");
                }
                let _ = writeln!(out, "}} {value}");
            }
        }
        for (name, help, value) in [
            (
                "loom_blocking_threads",
                "Blocking-pool worker threads.",
                self.blocking.threads,
            ),
            (
                "loom_blocking_idle_threads",
                "Idle blocking-pool workers.",
                self.blocking.idle,
            ),
            (
                "loom_blocking_queued",
                "Jobs waiting for a blocking-pool worker.",
                self.blocking.queued,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// A table: one row per number, one column per loop.
impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LABEL: usize = 22;
        const COLUMN: usize = 12;
        write!(f, "{:<LABEL$}", format!("loom ({})", self.backend))?;
        for lp in &self.loops {
            write!(f, "{:>COLUMN$}", format!("loop {}", lp.index))?;
        }
        writeln!(f)?;
        for row in ROWS {
            write!(f, "{:<LABEL$}", row.label)?;
            for lp in &self.loops {
                match (row.get)(lp) {
                    Some(value) => write!(f, "{value:>COLUMN$}")?,
                    None => write!(f, "{:>COLUMN$}", "-")?,
                }
            }
            writeln!(f)?;
        }
        write!(f, "{:<LABEL$}", "completions per wait")?;
        for lp in &self.loops {
            write!(f, "{:>COLUMN$.2}", lp.driver.completions_per_wait())?;
        }
        writeln!(f)?;
        write!(
            f,
            "blocking pool: {} threads ({} idle), {} jobs queued",
            self.blocking.threads, self.blocking.idle, self.blocking.queued
        )
    }
}
