//! Tracy profiling: zones that stay well nested while fibers switch.
//!
//! Everything here is off unless loom is built with the `tracy` feature (or
//! `tracy-fibers`, which implies it). Then a zone is a zone of the
//! [Tracy profiler](https://github.com/wolfpld/tracy); without it, a
//! zero-sized value that compiles to no code at all, and Tracy is not even
//! in the dependency graph.
//!
//! Zones are opened by code the macros generate: `#[loom::profile]` and the
//! `profile` option of `#[loom::main]`, `#[loom::fiber]` and
//! `#[loom::test]` make a function's first statement
//!
//! ```text
//! let __loom_zone = ::loom::__private::zone!(concat!(module_path!(), "::handle"));
//! ```
//!
//! and the zone ends when `__loom_zone` is dropped, as the function
//! returns (or unwinds). The argument is anything `concat!` accepts. Each
//! call site gets one `static` source location: opening a zone never
//! allocates.
//!
//! # Fibers and Tracy's tracks
//!
//! Tracy draws the zones of a thread as one stack, so zones must be well
//! nested per thread. A zone a fiber opens stays open while the fiber is
//! switched out and other fibers run on the same thread, so loom keeps
//! the stacks straight:
//!
//! - **`tracy`** (replay). Each fiber remembers the zones it has open (up
//!   to [`MAX_FIBER_ZONES`], outermost first). When the loop resumes the
//!   fiber it begins them again; when the fiber switches out it ends them,
//!   innermost first. So the fiber's zones appear once per run slice, on
//!   the loop thread's track, each slice nested inside nothing but itself.
//! - **`tracy-fibers`** (fiber tracks). Every resume is wrapped in Tracy's
//!   fiber enter/leave, naming the fiber's *stack slot* (`loom-loop-0/fiber-17`;
//!   Tracy keys a fiber track by the address of its name, and a slot hosts
//!   one fiber at a time). Zones simply stay open across switches, on the
//!   slot's track. A slot's track shows every fiber that has used it.
//!
//! Zones outside any fiber (loop code, a plain thread) begin and end
//! directly.
//!
//! # The profiler's lifetime
//!
//! The client is built with Tracy's manual lifetime: nothing runs before
//! `main`, and collected data reaches a viewer only when the client is shut
//! down after the threads that used it have been joined.
//!
//! - The first [`Runtime::run`](crate::Runtime::run) in the process starts
//!   it. Every runtime after it, at the same time or later, uses the same
//!   client (each holds a count while it runs).
//! - It is shut down when the process exits (an `atexit` handler: after
//!   `main` returns, or on `std::process::exit`), by which time every
//!   runtime has joined its loop threads. If a runtime is still running
//!   then, the shutdown is skipped: its data is lost rather than the
//!   client freed under it. An abort, `_exit` or a fatal signal (a Ctrl-C
//!   without a handler) loses the data too. With `TRACY_NO_EXIT=1` the
//!   shutdown first waits for a viewer to connect.
//! - **It is never started again**, which is why it is not shut down as
//!   soon as no runtime is running: Tracy cannot restart safely. A
//!   thread that used the client keeps, in thread-locals that only the
//!   restarting thread would reset, a raw pointer to its producer in the
//!   old (freed) event queue and its allocator's thread state.
//! - Until started and after shut down, zones are no-ops (one relaxed
//!   atomic load), so a profiled function may be called from any thread at
//!   any time.
//! - A plain thread (not a loop thread: a blocking-pool worker, a thread
//!   of the program's own) may open zones while the client runs; the
//!   shutdown waits (up to half a second) for such zones to end and, if
//!   one is still open then, skips the shutdown.
//! - Without a viewer connected, Tracy keeps every event in memory until
//!   one connects (or the process exits).
//!
//! Each loop thread is named in Tracy (`loom-loop-0` is the thread that
//! called `run`; on Linux its OS-level name is left as it was). The viewer
//! shows the thread that started the client — loop 0 of the first runtime
//! — as "Main thread" whatever its name: the client answers that thread's
//! name query with a fixed string.
//!
//! # Limits
//!
//! - Replay mode records at most [`MAX_FIBER_ZONES`] zones open at once in
//!   one fiber. Deeper zones are not emitted at all — in no run slice —
//!   though they are counted, so the zones around them stay right; the
//!   first time it happens, a warning is logged.
//! - A zone must end on the fiber (or thread) that opened it, as the
//!   generated `let` guarantees. A zone that escapes its fiber (returned
//!   from it) is ended when that fiber finishes; one forgotten with
//!   `mem::forget` is ended at every switch-out of its fiber until the
//!   fiber finishes, so the thread's track stays balanced either way.
//! - Tracy's per-thread state has a destructor that runs when a thread
//!   which used it exits, and nothing orders it against the shutdown: a
//!   detached thread that used zones and exits at the very moment the
//!   process's exit shuts Tracy down races with it (loom cannot hook those
//!   destructors to wait for them). Loop threads are joined long before;
//!   so are libtest's test threads.

#[cfg(all(feature = "tracy", not(test)))]
mod backend;
#[cfg(any(feature = "tracy", test))]
mod fiber;
#[cfg(any(feature = "tracy", test))]
mod lifetime;
#[cfg(any(feature = "tracy-fibers", test))]
pub(crate) mod names;
#[cfg(any(feature = "tracy", test))]
mod plots;
pub(crate) mod record;
#[cfg(test)]
mod recorder;
#[cfg(test)]
mod tests;

/// The unit tests send backend calls to the recorder instead of Tracy.
#[cfg(test)]
use recorder as backend;

#[cfg(any(feature = "tracy", test))]
pub(crate) use fiber::{after_resume, before_resume};
#[cfg(any(feature = "tracy", test))]
pub(crate) use lifetime::{RuntimeProfile, name_loop_thread};
#[cfg(any(feature = "tracy", test))]
pub(crate) use plots::plot_loop;
pub use record::MAX_FIBER_ZONES;
#[cfg(any(feature = "tracy", test))]
pub use record::SourceLocation;

// ---- zones, with profiling compiled in ----------------------------------

#[cfg(any(feature = "tracy", test))]
use std::marker::PhantomData;

/// An open profiler zone, ended when dropped.
///
/// Made by the `zone!` macro that profiled functions start with. Without
/// the `tracy` feature it is zero-sized and has no drop glue. Not `Send`: a
/// zone belongs to the thread (and fiber) that opened it.
#[cfg(any(feature = "tracy", test))]
#[must_use = "a zone ends when it is dropped"]
#[derive(Debug)]
pub struct Zone {
    kind: fiber::ZoneKind,
    _not_send: PhantomData<*const ()>,
}

/// An open profiler zone, ended when dropped.
///
/// Made by the `zone!` macro that profiled functions start with. Without
/// the `tracy` feature (this build) it is zero-sized and has no drop glue.
/// Not `Send`: a zone belongs to the thread (and fiber) that opened it.
#[cfg(not(any(feature = "tracy", test)))]
#[must_use = "a zone ends when it is dropped"]
#[derive(Debug)]
pub struct Zone {
    _not_send: std::marker::PhantomData<*const ()>,
}

#[cfg(not(any(feature = "tracy", test)))]
impl Zone {
    /// The zone `zone!` makes when profiling is compiled out: nothing.
    #[doc(hidden)]
    pub const OFF: Zone = Zone {
        _not_send: std::marker::PhantomData,
    };
}

/// Opens a profiler zone named by a string literal (or anything `concat!`
/// accepts) and returns its [`Zone`](crate::profiling::Zone) guard.
///
/// Macro plumbing for `#[loom::profile]` and friends: write
/// `let __loom_zone = ::loom::__private::zone!(concat!(module_path!(), "::f"));`.
/// This is the version with profiling compiled in: one `static` source
/// location per call site (no allocation, no lazy initialisation), then
/// `Zone::begin`. `#[cfg]` in a `macro_rules!` body would be evaluated in
/// the *calling* crate, so loom-runtime defines two versions of the macro
/// and picks one by its own features.
#[cfg(any(feature = "tracy", test))]
#[doc(hidden)]
#[macro_export]
macro_rules! zone {
    ($name:expr $(,)?) => {{
        static __LOOM_ZONE_LOCATION: $crate::profiling::SourceLocation =
            $crate::profiling::SourceLocation::new(
                ::core::concat!($name, "\0"),
                ::core::concat!(::core::file!(), "\0"),
                ::core::line!(),
            );
        $crate::profiling::Zone::begin(&__LOOM_ZONE_LOCATION)
    }};
}

/// Opens a profiler zone named by a string literal (or anything `concat!`
/// accepts) and returns its [`Zone`](crate::profiling::Zone) guard.
///
/// Macro plumbing for `#[loom::profile]` and friends: write
/// `let __loom_zone = ::loom::__private::zone!(concat!(module_path!(), "::f"));`.
/// This is the version with profiling compiled out: the name is still
/// checked by `concat!` (so code that builds without `tracy` builds with
/// it), and the result is a zero-sized constant — no code at all.
#[cfg(not(any(feature = "tracy", test)))]
#[doc(hidden)]
#[macro_export]
macro_rules! zone {
    ($name:expr $(,)?) => {{
        let _: &'static str = ::core::concat!($name);
        $crate::profiling::Zone::OFF
    }};
}

/// Whether zones are being recorded on this thread now: the client is
/// running (checked with one relaxed load; see `lifetime` for why relaxed
/// suffices where it is used without further synchronisation).
#[cfg(all(feature = "tracy", not(test)))]
#[inline(always)]
fn enabled() -> bool {
    lifetime::PROFILER.is_running()
}

/// In the unit tests: whether this thread's recorder is on.
#[cfg(test)]
fn enabled() -> bool {
    recorder::mode().is_some()
}

/// In the unit tests: whether this thread's recorder plays fiber tracks
/// (`tracy-fibers`) rather than replay (`tracy`).
#[cfg(test)]
fn fiber_tracks() -> bool {
    recorder::mode() == Some(recorder::Mode::FiberTracks)
}

/// Evaluates the fiber-tracks or the replay arm: chosen by the
/// `tracy-fibers` feature in real builds, where the other arm is not even
/// compiled, and by the recorder's per-thread mode in the unit tests, so
/// one test run covers both.
#[cfg(any(feature = "tracy", test))]
macro_rules! by_mode {
    (tracks => $tracks:block, replay => $replay:block $(,)?) => {{
        #[cfg(test)]
        let out = if $crate::profiling::fiber_tracks() {
            $tracks
        } else {
            $replay
        };
        #[cfg(all(not(test), feature = "tracy-fibers"))]
        let out = $tracks;
        #[cfg(all(not(test), not(feature = "tracy-fibers")))]
        let out = $replay;
        out
    }};
}
#[cfg(any(feature = "tracy", test))]
use by_mode;

// ---- without profiling: no-op stand-ins for the runtime's hooks ---------

/// Without profiling there is no profiler to start.
#[cfg(not(any(feature = "tracy", test)))]
#[derive(Debug)]
pub(crate) struct RuntimeProfile;

#[cfg(not(any(feature = "tracy", test)))]
impl RuntimeProfile {
    #[inline(always)]
    pub(crate) fn start() -> RuntimeProfile {
        RuntimeProfile
    }

    #[inline(always)]
    pub(crate) fn finish(self) {}
}

/// Without profiling there is no profiler to name threads in.
#[cfg(not(any(feature = "tracy", test)))]
#[inline(always)]
pub(crate) fn name_loop_thread(_loop_index: usize) {}

/// Without profiling there is nothing to plot.
#[cfg(not(any(feature = "tracy", test)))]
#[inline(always)]
pub(crate) fn plot_loop(_loop_index: usize, _stats: &crate::stats::LoopStats) {}
