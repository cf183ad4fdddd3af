//! Starting and stopping the Tracy client: started by the first runtime
//! of the process, shared by every runtime after it, shut down once, at
//! process exit, and never restarted (see the `profiling` module
//! documentation for why).
//!
//! Who may call into Tracy, and why it is still running when they do:
//!
//! - **Loop threads** of a runtime that holds a count (all of them while
//!   `running` is set: a runtime that could not take one started after the
//!   shutdown, and `running` is never set again). The exit-time shutdown
//!   skips itself while any runtime holds a count, and a runtime releases
//!   its count only after every loop thread was joined and loop 0 left its
//!   loop. Such a thread reads `running` with a relaxed load: it was
//!   spawned (or, for loop 0, took the lock) after the start, which
//!   happens-before it.
//! - **Plain threads** take a ticket ([`Lifetime::enter_plain`]) for the
//!   whole zone; the shutdown clears `running` and then waits for the
//!   tickets to drain. Both sides use `SeqCst` (Dekker): either the thread
//!   sees `running` cleared, or the shutdown sees its ticket.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The process's Tracy client.
#[cfg(not(test))]
pub(super) static PROFILER: Lifetime = Lifetime::new();

/// How long the shutdown at exit waits for zones still open on plain
/// threads before it gives up (and leaves the client running).
#[cfg(not(test))]
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// A counted, start-once, stop-once profiler lifetime. A type rather than a few
/// statics so the unit tests can check its rules on instances of their own.
#[derive(Debug)]
pub(super) struct Lifetime {
    /// Set once the client has started, cleared for good before it stops.
    running: AtomicBool,
    /// Zones open on plain threads (tickets), plus threads about to check
    /// `running` for one.
    plain_zones: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Runtimes holding a count.
    runtimes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    /// Shut down, or given up on (a plain zone would not end): never
    /// started again.
    Over,
}

impl Lifetime {
    pub(super) const fn new() -> Lifetime {
        Lifetime {
            running: AtomicBool::new(false),
            plain_zones: AtomicUsize::new(0),
            state: Mutex::new(State {
                phase: Phase::NotStarted,
                runtimes: 0,
            }),
        }
    }

    /// Whether the client is running (see the module documentation for
    /// when a relaxed load is enough).
    #[inline(always)]
    pub(super) fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Takes a count for a runtime about to start, calling `start` if it is
    /// the first ever. Returns whether the runtime is profiled: `false`
    /// once the profiler has been shut down.
    pub(super) fn acquire(&self, start: impl FnOnce()) -> bool {
        let mut state = self.lock();
        match state.phase {
            Phase::NotStarted => {
                start();
                state.phase = Phase::Running;
                // SeqCst: plain threads check it against their ticket.
                self.running.store(true, Ordering::SeqCst);
            }
            Phase::Running => {}
            Phase::Over => return false,
        }
        state.runtimes += 1;
        true
    }

    /// Returns a runtime's count, after it joined its loop threads. The
    /// client keeps running for the runtimes to come.
    pub(super) fn release(&self) {
        let mut state = self.lock();
        debug_assert!(state.runtimes > 0, "profiler count released twice");
        state.runtimes = state.runtimes.saturating_sub(1);
    }

    /// Shuts the client down for good, if it runs and no runtime holds a
    /// count: clears `running`, waits up to `drain_timeout` for zones open
    /// on plain threads, and calls `stop` — or, if a runtime still runs or
    /// a plain zone is still open, gives up without stopping (that data is
    /// lost; freeing the client under a thread still using it would be
    /// worse). Returns whether it called `stop`.
    pub(super) fn shut_down(&self, stop: impl FnOnce(), drain_timeout: Duration) -> bool {
        let mut state = self.lock();
        if state.phase != Phase::Running {
            return false;
        }
        if state.runtimes > 0 {
            log::warn!(
                "loom: {} runtime(s) still running at exit; not shutting the profiler down, \
                 so its data is not sent",
                state.runtimes
            );
            return false;
        }
        state.phase = Phase::Over;
        self.running.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + drain_timeout;
        while self.plain_zones.load(Ordering::SeqCst) != 0 {
            if Instant::now() >= deadline {
                log::warn!(
                    "loom: a profiler zone is still open on a thread outside any runtime; \
                     not shutting the profiler down, so its data is not sent"
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        stop();
        true
    }

    /// Takes a ticket for a zone on a plain thread; `false` (and no ticket)
    /// if the client is not running.
    pub(super) fn enter_plain(&self) -> bool {
        self.plain_zones.fetch_add(1, Ordering::SeqCst);
        if self.running.load(Ordering::SeqCst) {
            true
        } else {
            self.plain_zones.fetch_sub(1, Ordering::SeqCst);
            false
        }
    }

    /// Returns a ticket, after the zone's end was emitted.
    pub(super) fn leave_plain(&self) {
        // Release: the zone's end happens-before the shutdown that sees
        // the count drop (it loads with SeqCst, which acquires).
        self.plain_zones.fetch_sub(1, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One runtime's hold on the profiler, from before its loop threads start
/// until after they were all joined ([`RuntimeProfile::finish`]).
///
/// Dropped without `finish` — the runtime unwound with loop threads
/// perhaps still running — it keeps its count forever, so the profiler is
/// never shut down under them.
#[derive(Debug)]
pub(crate) struct RuntimeProfile {
    #[cfg(not(test))]
    profiled: bool,
}

impl RuntimeProfile {
    /// Starts the profiler if this is the first runtime of the process, or
    /// joins it. In the unit tests there is nothing to start: each
    /// thread's recorder is switched on by the test itself.
    pub(crate) fn start() -> RuntimeProfile {
        RuntimeProfile {
            #[cfg(not(test))]
            profiled: PROFILER.acquire(|| {
                // Tracy's threads inherit a mask that blocks the signals a
                // `loom::signal::Signals` may take, as loom's own do.
                crate::sys::signal::with_loom_thread_signals_blocked(|| {
                    // SAFETY: `acquire` calls this once per process, before
                    // any other Tracy call (all of which wait for `running`).
                    unsafe { super::backend::startup() }
                });
                // SAFETY: registers a plain `extern "C" fn()` that never
                // unwinds; `atexit` has no other requirement.
                if unsafe { libc::atexit(shut_down_at_exit) } != 0 {
                    log::warn!(
                        "loom: cannot register the profiler's shutdown at exit; \
                         its data will not reach a viewer"
                    );
                }
            }),
        }
    }

    /// Releases the runtime's count. Called after every loop thread was
    /// joined.
    pub(crate) fn finish(self) {
        #[cfg(not(test))]
        if self.profiled {
            PROFILER.release();
        }
    }
}

/// Shuts Tracy down as the process exits (from `exit`, i.e. after `main`
/// returned or `std::process::exit`), so what it collected reaches a
/// connected viewer (with `TRACY_NO_EXIT=1`, it first waits for one). By
/// then every runtime has joined its loop threads; if one is still
/// running, the shutdown is skipped.
#[cfg(not(test))]
extern "C" fn shut_down_at_exit() {
    // Nothing here should panic; if something did, unwinding out of an
    // `extern "C"` function would abort the exiting process.
    let _ = std::panic::catch_unwind(|| {
        PROFILER.shut_down(
            || {
                // No runtime holds a count (every profiled loop thread
                // was joined or left its loop) and every plain-thread zone
                // ended, and `running` is cleared for good.
                // SAFETY: called at most once, when (as above) no Tracy
                // call is in flight or will ever be made again.
                unsafe { super::backend::shutdown() }
            },
            DRAIN_TIMEOUT,
        )
    });
}

/// Names the calling loop thread in the profiler: `loom-loop-<index>`,
/// and makes its plots' names, so plotting never allocates later.
pub(crate) fn name_loop_thread(index: usize) {
    if !super::enabled() {
        return;
    }
    super::plots::prepare(index);
    let name = std::ffi::CString::new(format!("loom-loop-{index}"))
        .expect("a formatted number has no NUL");
    // SAFETY: a loop thread of a profiled runtime (`enabled()` held), which
    // keeps the profiler running.
    unsafe { super::backend::set_thread_name(&name) };
}
