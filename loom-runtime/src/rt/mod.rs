//! Building and running a runtime.
//!
//! A [`Runtime`] owns the resources of its event loop — for now one loop,
//! run on the thread that calls [`Runtime::run`] — and reserves them in
//! [`Builder::build`], so resource errors surface there, before any user
//! code runs.

pub(crate) mod affinity;
pub(crate) mod event_loop;

use std::fmt;
use std::io;
use std::panic;
use std::rc::Rc;
use std::time::Duration;

pub use crate::driver::Backend;
use crate::driver::{Driver, DriverConfig};
use crate::fiber::control::FiberName;
use crate::fiber::overflow::AltStack;
use crate::fiber::stack::{self, StackPool};
use event_loop::{EventLoop, LoopConfig, LoopGuard};

/// Default number of stacks reserved at start-up.
pub const DEFAULT_FIBERS: usize = 1024;
/// Default upper bound on stacks in use at once.
pub const DEFAULT_MAX_FIBERS: usize = 64 * 1024;
/// Default fiber stack size.
pub const DEFAULT_STACK_BYTES: usize = 64 * 1024;
/// Default time fibers get to finish after the main fiber returned.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);
/// Default io_uring submission-queue size (the completion queue is 4×).
pub const DEFAULT_RING_ENTRIES: u32 = 1024;

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
    event_loop::with_current("loom::rt::backend", |lp| lp.driver.backend())
}

/// Configures a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = loom::Runtime::builder()
///     .fibers(256)            // stacks reserved up front
///     .max_fibers(10_000)     // spawns beyond this wait for a free stack
///     .stack_size(32 * 1024)  // default stack of spawned fibers
///     .build()?;
/// assert_eq!(rt.run(|| 6 * 7), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    fibers: usize,
    max_fibers: Option<usize>,
    stack_bytes: usize,
    pin_to_cpu: Option<usize>,
    shutdown_timeout: Duration,
    backend: Backend,
    ring_entries: u32,
}

impl Builder {
    /// A builder with the defaults: [`DEFAULT_FIBERS`] stacks of
    /// [`DEFAULT_STACK_BYTES`] reserved, growing to [`DEFAULT_MAX_FIBERS`]
    /// (or `fibers`, if larger), no pinning.
    pub fn new() -> Builder {
        Builder {
            fibers: DEFAULT_FIBERS,
            max_fibers: None,
            stack_bytes: DEFAULT_STACK_BYTES,
            pin_to_cpu: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            backend: Backend::Auto,
            ring_entries: DEFAULT_RING_ENTRIES,
        }
    }

    /// The I/O backend (default [`Backend::Auto`]: io_uring if usable, else
    /// epoll or kqueue; `LOOM_BACKEND` overrides `Auto`).
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = backend;
        self
    }

    /// io_uring submission-queue entries, a power of two up to 32768
    /// (default [`DEFAULT_RING_ENTRIES`]). Not a limit on ops in flight: a
    /// full queue is submitted and refilled.
    pub fn ring_entries(mut self, entries: u32) -> Builder {
        self.ring_entries = entries;
        self
    }

    /// Number of stacks reserved at start-up. Reserving is cheap — address
    /// space plus one guard install per stack; memory is committed only when
    /// a fiber touches it.
    pub fn fibers(mut self, fibers: usize) -> Builder {
        self.fibers = fibers;
        self
    }

    /// The most fibers that may hold a stack at once (running, blocked, or
    /// finished with an unjoined handle). The pool grows towards it on
    /// demand; past it, spawning fibers wait for a stack to be released.
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

    /// Pins the loop's thread to `cpu` while the runtime runs (Linux only;
    /// elsewhere [`Builder::build`] fails with `Unsupported`).
    pub fn pin_to_cpu(mut self, cpu: usize) -> Builder {
        self.pin_to_cpu = Some(cpu);
        self
    }

    /// How long fibers still running when the main fiber returns get to
    /// finish after being cancelled. Fibers that are still unfinished then
    /// are abandoned: never resumed again, their stacks leaked (logged).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.shutdown_timeout = timeout;
        self
    }

    /// Validates the configuration and reserves the stack pool.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a stack size out of range, `max_fibers` of 0 or
    /// below `fibers`, or a CPU outside the process's affinity mask;
    /// `Unsupported` for pinning off Linux or a backend this host lacks
    /// (explicit `IoUring` where io_uring is refused, e.g. `EPERM` under a
    /// seccomp filter); the reservation's error (e.g. `OutOfMemory` naming
    /// `vm.max_map_count`) if the stacks cannot be mapped.
    pub fn build(self) -> io::Result<Runtime> {
        let stack_bytes = stack::validate_stack_bytes(self.stack_bytes)?;
        let max_fibers = self
            .max_fibers
            .unwrap_or(DEFAULT_MAX_FIBERS.max(self.fibers));
        if max_fibers == 0 || max_fibers < self.fibers {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "max_fibers ({max_fibers}) must be at least 1 and at least fibers ({})",
                    self.fibers
                ),
            ));
        }
        if let Some(cpu) = self.pin_to_cpu {
            affinity::check_cpu(cpu)?;
        }
        if !self.ring_entries.is_power_of_two() || self.ring_entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ring_entries ({}) must be a power of two from 1 to 32768",
                    self.ring_entries
                ),
            ));
        }
        let pool = StackPool::new(stack_bytes, self.fibers, max_fibers)?;
        let driver = Driver::open(
            self.backend,
            DriverConfig {
                ring_entries: self.ring_entries,
                events: 1024,
            },
        )?;
        Ok(Runtime {
            pool,
            driver,
            config: LoopConfig {
                stack_bytes,
                shutdown_timeout: self.shutdown_timeout,
            },
            pin_to_cpu: self.pin_to_cpu,
        })
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

/// A configured loom runtime, ready to [`run`](Runtime::run).
pub struct Runtime {
    pool: StackPool,
    driver: Driver,
    config: LoopConfig,
    pin_to_cpu: Option<usize>,
}

impl Runtime {
    /// Starts configuring a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Runs `main` as the main fiber (named `"main"`) on this thread's
    /// event loop and returns its result once it and every other fiber are
    /// done.
    ///
    /// When the main fiber returns, the remaining fibers are cancelled —
    /// their blocking calls return the cancellation error (`ECANCELED`) — and get the shutdown
    /// timeout to finish; stacks are released only after their fibers
    /// finished. If the main fiber panics, the panic resumes here, after
    /// that shutdown, so a program's `main` exits with status 101 like std.
    ///
    /// # Panics
    ///
    /// If called from inside a loom runtime, if the main fiber panics, or if
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
            !event_loop::in_runtime(),
            "loom: Runtime::run cannot be called from inside a loom runtime; spawn a fiber instead"
        );
        let _pinned = self
            .pin_to_cpu
            .map(|cpu| affinity::pin_current_thread(cpu).unwrap_or_else(|e| panic!("loom: {e}")));
        let _alt_stack = AltStack::ensure().unwrap_or_else(|e| {
            log::warn!("no alternate signal stack for fiber overflow reports: {e}");
            None
        });
        let event_loop = Rc::new(EventLoop::new(self.pool, self.driver, self.config));
        event_loop
            .driver
            .start()
            .unwrap_or_else(|e| panic!("loom: cannot start the I/O driver: {e}"));
        let guard = LoopGuard::enter(&event_loop);
        let main = event_loop
            .spawn(FiberName::new("main"), None, main)
            .unwrap_or_else(|e| panic!("loom: cannot spawn the main fiber: {e}"));
        {
            // Should the loop itself ever unwind (a runtime bug), stacks of
            // suspended fibers must still never be unmapped under them.
            let _abandon = AbandonOnUnwind(&event_loop);
            event_loop.drive(main.fiber_ptr());
        }
        drop(guard);
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

    /// The I/O backend this runtime will use.
    pub fn backend(&self) -> Backend {
        self.driver.backend()
    }

    /// Stacks reserved so far.
    pub fn reserved_fibers(&self) -> usize {
        self.pool.capacity()
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
        f.debug_struct("Runtime")
            .field("stack_bytes", &self.config.stack_bytes)
            .field("reserved_fibers", &self.pool.capacity())
            .field("max_fibers", &self.pool.max_fibers())
            .field("guard_kind", &self.pool.guard_kind())
            .field("pin_to_cpu", &self.pin_to_cpu)
            .field("backend", &self.driver.backend())
            .finish()
    }
}
