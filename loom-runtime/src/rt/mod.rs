//! Building and running a runtime.
//!
//! A [`Runtime`] owns the resources of its event loops — one per thread,
//! [`Builder::threads`] of them — and reserves them in [`Builder::build`], so
//! resource errors surface there, before any user code runs. Loop 0 runs on
//! the thread that calls [`Runtime::run`], with the main fiber; the others
//! get threads of their own.

pub(crate) mod affinity;
pub(crate) mod cross;
pub(crate) mod current;
pub(crate) mod event_loop;
mod metrics;
mod spawn_slots;
mod stall;

use std::fmt;
use std::io;
use std::panic;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub use crate::driver::Backend;
use crate::driver::{Driver, DriverConfig};
use crate::fiber::JoinHandle;
pub use crate::stack::budget::{RESERVED_MAPPINGS, StackBudget, stack_budget};
use crate::stack::control::FiberName;
use crate::stack::overflow::AltStack;
use crate::stack::pool::{self, PoolLimits, StackPool};
pub use crate::stack::reserve::GuardKind;
use crate::stats::LoopStats;
pub use cross::{SendJoinHandle, broadcast, spawn_on};
use current::LoopGuard;
use event_loop::{EventLoop, LoopConfig, RuntimeShared};
pub use metrics::{
    BlockingMetrics, DriverMetrics, FiberMetrics, LoopMetrics, Metrics, MetricsHandle, OpMetrics,
    StackMetrics, metrics, metrics_handle,
};
use stall::StallMonitor;

/// Default number of stacks reserved at start-up, per loop.
pub const DEFAULT_FIBERS: usize = 1024;
/// Default upper bound on stacks in use at once, per loop.
pub const DEFAULT_MAX_FIBERS: usize = 64 * 1024;
/// Default fiber stack size.
pub const DEFAULT_STACK_BYTES: usize = 64 * 1024;
/// Default time fibers get to finish after the main fiber returned.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);
/// Default io_uring submission-queue size (the completion queue is 16×:
/// see `Builder::ring_entries`).
pub const DEFAULT_RING_ENTRIES: u32 = 1024;
/// Default time an idle loop watches its mailbox before parking, while
/// messages from other threads are flowing (see [`Builder::idle_spin`]).
pub const DEFAULT_IDLE_SPIN: Duration = Duration::from_micros(50);
/// The most loops one runtime may have.
pub const MAX_THREADS: usize = 1024;
/// Default time a fiber may run without yielding before the stall monitor
/// warns (see [`Builder::stall_threshold`]).
pub const DEFAULT_STALL_THRESHOLD: Duration = Duration::from_millis(100);

/// The index of the loop running the calling fiber: `0..loop_count()`.
/// The main fiber runs on loop 0.
///
/// # Panics
///
/// Outside a loom runtime.
#[track_caller]
pub fn loop_index() -> usize {
    current::with_current("loom::rt::loop_index", |lp| lp.index)
}

/// The number of loops (threads) of the calling fiber's runtime.
///
/// # Panics
///
/// Outside a loom runtime.
#[track_caller]
pub fn loop_count() -> usize {
    current::with_current("loom::rt::loop_count", EventLoop::loop_count)
}

/// The I/O backend of the runtime running on this thread.
///
/// # Panics
///
/// Outside a loom runtime.
///
/// # Examples
///
/// ```
/// let rt = loom::Runtime::builder().build()?;
/// println!("running on {}", rt.run(loom::rt::backend));
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn backend() -> Backend {
    current::with_current("loom::rt::backend", |lp| lp.driver.backend())
}

/// Configures a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = loom::Runtime::builder()
///     .threads(2)             // two loops, on two threads
///     .fibers(256)            // stacks reserved up front, per loop
///     .max_fibers(10_000)     // spawns beyond this wait for a free stack
///     .stack_size(32 * 1024)  // default stack of spawned fibers
///     .build()?;
/// assert_eq!(rt.run(|| 6 * 7), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    threads: usize,
    fibers: usize,
    max_fibers: Option<usize>,
    stack_bytes: usize,
    pin: Pin,
    shutdown_timeout: Duration,
    idle_spin: Duration,
    backend: Backend,
    ring_entries: u32,
    stall_threshold: Option<Duration>,
    #[cfg(feature = "tokio")]
    tokio_threads: Option<usize>,
}

#[derive(Clone, Debug)]
enum Pin {
    No,
    /// Loop `i` on the `i`-th CPU of the process's affinity mask.
    InOrder,
    /// Loop `i` on `cpus[i]`.
    Cpus(Vec<usize>),
}

impl Builder {
    /// A builder with the defaults: one loop, [`DEFAULT_FIBERS`] stacks of
    /// [`DEFAULT_STACK_BYTES`] reserved, growing to [`DEFAULT_MAX_FIBERS`]
    /// (or `fibers`, if larger), no pinning.
    pub fn new() -> Builder {
        Builder {
            threads: 1,
            fibers: DEFAULT_FIBERS,
            max_fibers: None,
            stack_bytes: DEFAULT_STACK_BYTES,
            pin: Pin::No,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            idle_spin: DEFAULT_IDLE_SPIN,
            backend: Backend::Auto,
            ring_entries: DEFAULT_RING_ENTRIES,
            stall_threshold: Some(DEFAULT_STALL_THRESHOLD),
            #[cfg(feature = "tokio")]
            tokio_threads: None,
        }
    }

    /// The number of event loops, each on its own OS thread with its own
    /// driver, scheduler, stack pool and timers (default 1, at most
    /// [`MAX_THREADS`]). Fibers never move between loops; use
    /// [`spawn_on`] or [`broadcast`] to start work on another loop.
    pub fn threads(mut self, threads: usize) -> Builder {
        self.threads = threads;
        self
    }

    /// Pins loop `i` to the `i`-th CPU of the process's affinity mask
    /// (Linux only; elsewhere [`Builder::build`] fails with `Unsupported`).
    pub fn pin(mut self, pin: bool) -> Builder {
        self.pin = if pin { Pin::InOrder } else { Pin::No };
        self
    }

    /// Pins loop `i` to `cpus[i]`; needs a CPU for every loop, each in the
    /// process's affinity mask (Linux only).
    pub fn pin_cpus(mut self, cpus: &[usize]) -> Builder {
        self.pin = Pin::Cpus(cpus.to_vec());
        self
    }

    /// The I/O backend (default [`Backend::Auto`]: io_uring if usable, else
    /// epoll or kqueue; `LOOM_BACKEND` overrides `Auto`).
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = backend;
        self
    }

    /// io_uring submission-queue entries, a power of two up to 32768
    /// (default [`DEFAULT_RING_ENTRIES`]). Not a limit on ops in flight: a
    /// full queue is submitted and refilled. The completion queue gets 16
    /// times as many entries (the kernel caps it at 65 536) — by default
    /// 16 384, 256 KiB of ring memory per loop — so that one read in flight
    /// per connection does not overflow it at 10 000 connections: the
    /// kernel then holds completions back on a slower path, and the loop
    /// sees them in bursts.
    pub fn ring_entries(mut self, entries: u32) -> Builder {
        self.ring_entries = entries;
        self
    }

    /// Number of stacks reserved at start-up, per loop. Reserving is cheap —
    /// address space plus one guard install per stack; memory is committed
    /// only when a fiber touches it. With `mprotect` guard pages (Linux
    /// below 6.13) it must fit in the loop's share of the [`stack_budget`].
    pub fn fibers(mut self, fibers: usize) -> Builder {
        self.fibers = fibers;
        self
    }

    /// The most fibers that may hold a stack at once on one loop (running,
    /// blocked, or finished with an unjoined handle). The pool grows towards
    /// it on demand; past it, spawning fibers wait for a stack to be
    /// released.
    ///
    /// With `mprotect` guard pages (Linux below 6.13, where each stack costs
    /// two of the process's `vm.max_map_count` mappings) growth also stops
    /// at the loop's share of the [`stack_budget`], and spawns wait there
    /// the same way; a warning, logged once, names the sysctl that would
    /// let the pool reach `max_fibers`. [`Runtime::fiber_limit`] tells
    /// which bound is in force.
    pub fn max_fibers(mut self, max_fibers: usize) -> Builder {
        self.max_fibers = Some(max_fibers);
        self
    }

    /// The stack size, in bytes, of fibers spawned without an explicit one
    /// (including the main fiber). Rounded up to whole pages; must be within
    /// [`crate::fiber::MIN_STACK_BYTES`]`..=`[`crate::fiber::MAX_STACK_BYTES`].
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_bytes = bytes;
        self
    }

    /// How long fibers still running when the main fiber returns get to
    /// finish after being cancelled. Fibers that are still unfinished then
    /// are abandoned: never resumed again, their stacks leaked (logged).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a loop with nothing to run keeps watching its mailbox
    /// before it parks in the kernel (default [`DEFAULT_IDLE_SPIN`]) — only
    /// when its previous wake-up was a message from another thread, i.e.
    /// while cross-loop traffic (channels, `spawn_on`) flows. Waking a
    /// parked loop costs a system call on the sender's side and a kernel
    /// wake-up on the loop's; `Duration::ZERO` never spins.
    pub fn idle_spin(mut self, spin: Duration) -> Builder {
        self.idle_spin = spin;
        self
    }

    /// How long a fiber may run without yielding before a warning names it
    /// (default [`DEFAULT_STALL_THRESHOLD`]; `None` turns the monitor off).
    ///
    /// A fiber that computes for long or calls a blocking function (a
    /// `std` read, `std::thread::sleep`, a lock held elsewhere) stops every
    /// other fiber of its loop. A monitor thread, started by
    /// [`Runtime::run`], samples each loop's switch count every quarter
    /// threshold; when a loop has stayed in one fiber for the threshold it
    /// logs a warning, at `warn` through the `log` facade, naming the loop,
    /// the fiber's name and id and how long so far, and another when the
    /// fiber yields, with the total; [`LoopMetrics::stalls`] counts them.
    /// The loops pay a switch count (a plain load and store per switch)
    /// for it: no system call, no atomic read-modify-write. Durations are
    /// accurate to the sampling period. With `env_logger` the output is:
    ///
    /// ```text
    /// [.. WARN  loom_runtime::rt::stall] loom: loop 0 stalled: fiber "report" (#203) has run for 100 ms without yielding (stall threshold 100 ms); every other fiber of this loop waits. ...
    /// [.. WARN  loom_runtime::rt::stall] loom: loop 0: fiber "report" (#203) yielded after running 302 ms without a break
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = loom::Runtime::builder()
    ///     .stall_threshold(Some(Duration::from_millis(20)))
    ///     .build()?;
    /// let stalls = rt.run(|| {
    ///     std::thread::sleep(Duration::from_millis(200)); // blocks the loop
    ///     loom::yield_now();
    ///     loom::rt::metrics().loops[0].stalls
    /// });
    /// assert_eq!(stalls, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stall_threshold(mut self, threshold: Option<Duration>) -> Builder {
        self.stall_threshold = threshold;
        self
    }

    /// Worker threads of the tokio bridge's background runtime
    /// ([`crate::compat::tokio`], feature `tokio`), from 1 to
    /// [`compat::tokio::MAX_THREADS`](crate::compat::tokio::MAX_THREADS);
    /// default [`compat::tokio::DEFAULT_THREADS`](crate::compat::tokio::DEFAULT_THREADS).
    ///
    /// That runtime is shared by the whole process and started on the
    /// bridge's first use, so this applies if [`Builder::build`] runs
    /// before then (the last build's count wins); later it is only logged.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = loom::Runtime::builder().tokio_threads(2).build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "tokio")]
    pub fn tokio_threads(mut self, threads: usize) -> Builder {
        self.tokio_threads = Some(threads);
        self
    }

    /// Validates the configuration and reserves every loop's stack pool
    /// and I/O driver.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for 0 or more than [`MAX_THREADS`] threads, a stack
    /// size out of range, `max_fibers` of 0 or below `fibers`, pinning with
    /// fewer CPUs than loops or to a CPU outside the process's affinity mask,
    /// `tokio_threads` out of range (feature `tokio`);
    /// `Unsupported` for pinning off Linux or a backend this host lacks
    /// (explicit `IoUring` where io_uring is refused, e.g. `EPERM` under a
    /// seccomp filter); `OutOfMemory` naming `vm.max_map_count` when
    /// `fibers` exceeds a loop's share of the [`stack_budget`]; the
    /// reservation's error if the stacks cannot be mapped.
    pub fn build(self) -> io::Result<Runtime> {
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(invalid(format!(
                "threads ({}) must be from 1 to {MAX_THREADS}",
                self.threads
            )));
        }
        let stack_bytes = pool::validate_stack_bytes(self.stack_bytes)?;
        let max_fibers = self
            .max_fibers
            .unwrap_or(DEFAULT_MAX_FIBERS.max(self.fibers));
        if max_fibers == 0 || max_fibers < self.fibers {
            return Err(invalid(format!(
                "max_fibers ({max_fibers}) must be at least 1 and at least fibers ({})",
                self.fibers
            )));
        }
        if self.stall_threshold.is_some_and(|t| t.is_zero()) {
            return Err(invalid(
                "stall_threshold must be above zero (None turns the monitor off)".to_owned(),
            ));
        }
        if !self.ring_entries.is_power_of_two() || self.ring_entries > 32768 {
            return Err(invalid(format!(
                "ring_entries ({}) must be a power of two from 1 to 32768",
                self.ring_entries
            )));
        }
        let cpus = match &self.pin {
            Pin::No => vec![None; self.threads],
            Pin::InOrder => {
                let allowed = affinity::allowed_cpus()?;
                if allowed.len() < self.threads {
                    return Err(invalid(format!(
                        "cannot pin {} loops to distinct CPUs: this process may run on {} ({allowed:?})",
                        self.threads,
                        allowed.len()
                    )));
                }
                allowed.into_iter().take(self.threads).map(Some).collect()
            }
            Pin::Cpus(cpus) => {
                if cpus.len() < self.threads {
                    return Err(invalid(format!(
                        "pin_cpus lists {} CPUs for {} loops",
                        cpus.len(),
                        self.threads
                    )));
                }
                for &cpu in cpus {
                    affinity::check_cpu(cpu)?;
                }
                cpus.iter().take(self.threads).copied().map(Some).collect()
            }
        };
        #[cfg(feature = "tokio")]
        if let Some(threads) = self.tokio_threads {
            use crate::compat::tokio::MAX_THREADS as MAX_TOKIO_THREADS;
            if threads == 0 || threads > MAX_TOKIO_THREADS {
                return Err(invalid(format!(
                    "tokio_threads ({threads}) must be from 1 to {MAX_TOKIO_THREADS}"
                )));
            }
        }
        let guard_kind = crate::stack::reserve::detect_guard_kind();
        let budget = StackBudget::read(guard_kind);
        let limits = PoolLimits {
            prealloc: self.fibers,
            max_fibers,
            budget: budget.per_loop(self.threads),
            max_map_count_needed: budget.max_map_count_for(max_fibers.saturating_mul(self.threads)),
        };
        if let Some(per_loop) = limits.budget
            && self.fibers > per_loop
        {
            return Err(over_budget(&budget, self.fibers, self.threads, per_loop));
        }
        let loops = cpus
            .into_iter()
            .enumerate()
            .map(|(index, cpu)| {
                let pool = StackPool::new(stack_bytes, limits, guard_kind, index)?;
                let driver = Driver::open(
                    self.backend,
                    DriverConfig {
                        ring_entries: self.ring_entries,
                        events: 1024,
                    },
                )?;
                Ok(LoopParts { pool, driver, cpu })
            })
            .collect::<io::Result<Vec<_>>>()?;
        #[cfg(feature = "tokio")]
        if let Some(threads) = self.tokio_threads {
            crate::compat::tokio::request_threads(threads);
        }
        let stats: Arc<[Arc<LoopStats>]> = loops.iter().map(|_| Arc::default()).collect();
        Ok(Runtime {
            loops,
            stats,
            stall_threshold: self.stall_threshold,
            config: LoopConfig {
                stack_bytes,
                shutdown_timeout: self.shutdown_timeout,
                idle_spin: self.idle_spin,
            },
        })
    }
}

/// `fibers` stacks per loop do not fit in the host's mapping budget.
fn over_budget(budget: &StackBudget, fibers: usize, threads: usize, per_loop: usize) -> io::Error {
    let needed = budget
        .max_map_count_for(fibers.saturating_mul(threads))
        .map_or_else(|| "<more>".to_owned(), |n| n.to_string());
    let loops = match threads {
        1 => "its one loop".to_owned(),
        n => format!("each of its {n} loops"),
    };
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "cannot install guard pages for {fibers} fiber stacks on {loops}: \
             {per_loop} fit per loop ({budget}). Raise the limit with `sysctl -w \
             vm.max_map_count={needed}`, lower `fibers`, or run on Linux >= 6.13 where \
             MADV_GUARD_INSTALL needs no extra mappings"
        ),
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

/// What one loop is made of, reserved by [`Builder::build`].
struct LoopParts {
    pool: StackPool,
    driver: Driver,
    cpu: Option<usize>,
}

// SAFETY: the parts are built on the caller's thread but not used there.
// Their raw pointers (the pool's free list, the driver's empty waiter
// lists) point only into memory the parts own, and no fiber, stack or I/O
// source refers to them until the loop's own thread starts the driver
// (io_uring's single issuer is the thread that enables the ring, in
// `Driver::start`). They move to that thread whole and stay there.
unsafe impl Send for LoopParts {}

/// A configured loom runtime, ready to [`run`](Runtime::run).
pub struct Runtime {
    loops: Vec<LoopParts>,
    /// Each loop's counters, by index: the loops write them, metrics
    /// handles and the stall monitor read them.
    stats: Arc<[Arc<LoopStats>]>,
    stall_threshold: Option<Duration>,
    config: LoopConfig,
}

impl Runtime {
    /// Starts configuring a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Runs `main` as the main fiber (named `"main"`) on loop 0, on this
    /// thread, with the other loops on threads of their own, and returns
    /// main's result once it and every other fiber are done.
    ///
    /// When the main fiber returns, every loop shuts down: its remaining
    /// fibers are cancelled — their blocking calls return the cancellation
    /// error (`ECANCELED`) — and get the shutdown timeout to finish; stacks
    /// are released only after their fibers finished; each loop's thread
    /// exits after its loop stopped, and `run` returns after all of them.
    /// If the main fiber panics, the panic resumes here, after that
    /// shutdown, so a program's `main` exits with status 101 like std.
    ///
    /// # Panics
    ///
    /// If called from inside a loom runtime, if the main fiber panics, if a
    /// loop thread cannot be started, or — in a runtime of one loop — if
    /// every fiber is blocked with nothing left to wake them even after they
    /// were all cancelled (a deadlock).
    ///
    /// # Examples
    ///
    /// ```
    /// let answer = loom::Runtime::builder().build()?.run(|| {
    ///     let worker = loom::spawn(|| 40);
    ///     worker.join().unwrap() + 2
    /// });
    /// assert_eq!(answer, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn run<F, T>(self, main: F) -> T
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        assert!(
            !current::in_runtime(),
            "loom: Runtime::run cannot be called from inside a loom runtime; spawn a fiber instead"
        );
        // The profiler (feature `tracy`) starts before any loop thread
        // exists and is released only after all of them were joined.
        let profile = crate::profiling::RuntimeProfile::start();
        let shared = Arc::new(RuntimeShared {
            remotes: self
                .loops
                .iter()
                .map(|parts| Arc::clone(parts.driver.remote()))
                .collect(),
            stats: Arc::clone(&self.stats),
        });
        let monitor = self
            .stall_threshold
            .and_then(|threshold| StallMonitor::start(threshold, Arc::clone(&self.stats)));
        let mut loops = self.loops.into_iter();
        let first = loops.next().expect("build makes at least one loop");
        let others: Vec<thread::JoinHandle<()>> = loops
            .enumerate()
            .map(|(i, parts)| {
                let index = i + 1;
                let shared = Arc::clone(&shared);
                let config = self.config.clone();
                thread::Builder::new()
                    .name(format!("loom-loop-{index}"))
                    .spawn(move || {
                        // Before any fiber runs: a loop never takes a
                        // signal meant for a `loom::signal::Signals`.
                        crate::sys::signal::block_loom_thread_signals();
                        run_loop::<()>(parts, config, index, shared, |_| None);
                    })
                    .unwrap_or_else(|e| {
                        panic!("loom: cannot start the thread of loop {index}: {e}")
                    })
            })
            .collect();
        let main = run_loop(first, self.config, 0, Arc::clone(&shared), |lp| {
            let spawned = lp
                .spawn(FiberName::new("main"), None, main)
                .unwrap_or_else(|e| panic!("loom: cannot spawn the main fiber: {e}"));
            Some(JoinHandle::new(Rc::clone(lp), spawned))
        })
        .expect("loop 0 runs the main fiber");
        let mut loop_panic = None;
        for other in others {
            if let Err(payload) = other.join() {
                loop_panic.get_or_insert(payload);
            }
        }
        if let Some(monitor) = monitor {
            monitor.stop();
        }
        profile.finish();
        if let Some(payload) = loop_panic {
            panic::resume_unwind(payload);
        }
        assert!(
            main.is_finished(),
            "loom: deadlock: the main fiber is blocked forever (every fiber was cancelled and \
             nothing can wake it)"
        );
        match main.join() {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// A handle that reads this runtime's metrics from any thread, before,
    /// while and after it runs (see [`metrics`]).
    pub fn metrics(&self) -> MetricsHandle {
        MetricsHandle {
            loops: Arc::clone(&self.stats),
            backend: self.backend(),
        }
    }

    /// The I/O backend this runtime will use.
    pub fn backend(&self) -> Backend {
        self.loops[0].driver.backend()
    }

    /// Each loop's share of the [`stack_budget`] read when the runtime was
    /// built (`None` where stacks have no mapping budget: `MADV_GUARD_INSTALL`
    /// guards on Linux ≥ 6.13, or no mapping limit to read). While the
    /// runtime runs, a loop's share shrinks to the stacks it holds if the
    /// kernel refuses a mapping the budget counted on (something else in
    /// the process mapped more since).
    pub fn stack_budget(&self) -> Option<usize> {
        self.loops[0].pool.budget()
    }

    /// The most fibers one loop can hold at once: `max_fibers`, or the
    /// loop's [`stack_budget`](Runtime::stack_budget) if that is smaller.
    /// Spawning past it waits for a stack to be freed.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = loom::Runtime::builder().max_fibers(1_000_000).build()?;
    /// // Linux >= 6.13: 1 000 000. Below it (mprotect guard pages, two
    /// // mappings per stack): about 31 700 at the default vm.max_map_count.
    /// println!("up to {} fibers at once", rt.fiber_limit());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fiber_limit(&self) -> usize {
        self.loops[0].pool.limit()
    }

    /// Stacks reserved so far, over all loops.
    pub fn reserved_fibers(&self) -> usize {
        self.loops.iter().map(|parts| parts.pool.capacity()).sum()
    }

    /// The number of loops.
    pub fn threads(&self) -> usize {
        self.loops.len()
    }
}

/// Runs one loop on the calling thread until it shut down; `first` spawns
/// the loop's first fiber (loop 0's main), whose handle is returned.
fn run_loop<T>(
    parts: LoopParts,
    config: LoopConfig,
    index: usize,
    shared: Arc<RuntimeShared>,
    first: impl FnOnce(&Rc<EventLoop>) -> Option<JoinHandle<T>>,
) -> Option<JoinHandle<T>> {
    let LoopParts { pool, driver, cpu } = parts;
    let _pinned = cpu.map(|cpu| {
        affinity::pin_current_thread(cpu)
            .unwrap_or_else(|e| panic!("loom: cannot pin loop {index}: {e}"))
    });
    crate::profiling::name_loop_thread(index);
    let _alt_stack = AltStack::ensure().unwrap_or_else(|e| {
        log::warn!("no alternate signal stack for fiber overflow reports: {e}");
        None
    });
    let event_loop = Rc::new(EventLoop::new(pool, driver, config, index, shared));
    // Dropped before the loop, on unwind too: the stall monitor must be
    // done reading fiber stacks before they can be unmapped.
    let _close = CloseStatsOnDrop(&event_loop.shared.stats[index]);
    event_loop
        .driver
        .start()
        .unwrap_or_else(|e| panic!("loom: cannot start the I/O driver of loop {index}: {e}"));
    let guard = LoopGuard::enter(&event_loop);
    let first = first(&event_loop);
    {
        // Should the loop itself ever unwind (a runtime bug), stacks of
        // suspended fibers must still never be unmapped under them.
        let _abandon = AbandonOnUnwind(&event_loop);
        event_loop.drive(first.as_ref().map(JoinHandle::fiber_ptr));
        event_loop.drop_deferred_spawns();
        event_loop.driver.remote().close();
    }
    drop(guard);
    first
}

/// Marks a loop's counters closed: the stall monitor reads no more of its
/// fibers' stacks.
struct CloseStatsOnDrop<'a>(&'a LoopStats);

impl Drop for CloseStatsOnDrop<'_> {
    fn drop(&mut self) {
        *self
            .0
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.0.running.leave();
    }
}

/// Abandons (leaks) every unfinished fiber if dropped during a panic.
struct AbandonOnUnwind<'a>(&'a EventLoop);

impl Drop for AbandonOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon_unfinished();
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = &self.loops[0];
        f.debug_struct("Runtime")
            .field("threads", &self.loops.len())
            .field("stack_bytes", &self.config.stack_bytes)
            .field("reserved_fibers", &self.reserved_fibers())
            .field("max_fibers", &first.pool.max_fibers())
            .field("guard_kind", &first.pool.guard_kind())
            .field("stack_budget", &first.pool.budget())
            .field(
                "cpus",
                &self.loops.iter().map(|parts| parts.cpu).collect::<Vec<_>>(),
            )
            .field("backend", &first.driver.backend())
            .finish()
    }
}
