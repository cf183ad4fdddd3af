//! The stall monitor: a thread per runtime that notices a loop stuck in
//! one fiber — a fiber computing for too long or calling a blocking
//! function — and names it in a warning.
//!
//! The loops do nothing for it but what their counters already do: each
//! resume stores the switch count, and the scheduler's record of the
//! running fiber's control block lives where the monitor can read it
//! (`sched/mod.rs`). The monitor samples them every
//! quarter threshold; a loop whose count has not moved while a fiber runs
//! for at least the threshold is stalled. It then reads that fiber's id and
//! name from its slot's `SlotIdent` (atomics, so reading a slot being
//! reused is defined, and re-checked against the count) under the loop's
//! `closed` lock, which the loop takes before its stacks can be unmapped.
//! Durations are the monitor's own: accurate to one sampling period.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::stack::control::{FiberControl, FiberName, SlotIdent};
use crate::stats::LoopStats;

/// The shortest sampling period, whatever the threshold.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// A running monitor; [`StallMonitor::stop`] ends its thread.
#[derive(Debug)]
pub(crate) struct StallMonitor {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: thread::JoinHandle<()>,
}

impl StallMonitor {
    /// Starts watching `loops`; `None` (logged) if no thread can be started:
    /// the runtime runs unwatched rather than not at all.
    pub(crate) fn start(threshold: Duration, loops: Arc<[Arc<LoopStats>]>) -> Option<StallMonitor> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        // Started with signals blocked, like every loom thread, so it never
        // takes a signal meant for a `loom::signal::Signals` (a signalfd
        // sees only signals every thread blocks), not even as it starts.
        let thread = crate::sys::signal::with_loom_thread_signals_blocked(|| {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("loom-stall-monitor".into())
                .spawn(move || watch(threshold, &loops, &stop))
        });
        match thread {
            Ok(thread) => Some(StallMonitor { stop, thread }),
            Err(e) => {
                log::warn!("loom: cannot start the stall monitor: {e}; stalls go unreported");
                None
            }
        }
    }

    pub(crate) fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_one();
        let _ = self.thread.join();
    }
}

/// What the monitor last saw of one loop.
struct Seen {
    switches: u64,
    /// When the monitor first saw `switches`.
    since: Instant,
    /// The fiber reported as stalling, until the loop moves on.
    reported: Option<(u64, FiberName)>,
}

fn watch(threshold: Duration, loops: &[Arc<LoopStats>], stop: &(Mutex<bool>, Condvar)) {
    let period = (threshold / 4).max(MIN_PERIOD);
    let now = Instant::now();
    let mut seen: Vec<Seen> = loops
        .iter()
        .map(|stats| Seen {
            switches: stats.switches.get(),
            since: now,
            reported: None,
        })
        .collect();
    let (stopped, wake) = stop;
    let mut guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        guard = wake
            .wait_timeout(guard, period)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if *guard {
            return;
        }
        let now = Instant::now();
        for (index, (stats, seen)) in loops.iter().zip(&mut seen).enumerate() {
            check(index, stats, seen, now, threshold);
        }
    }
}

fn check(index: usize, stats: &LoopStats, seen: &mut Seen, now: Instant, threshold: Duration) {
    let switches = stats.switches.get();
    let in_fiber = !stats.running.get().is_null();
    if switches != seen.switches || !in_fiber {
        if let Some((id, name)) = seen.reported.take() {
            log::warn!(
                "loom: loop {index}: fiber {} (#{id}) yielded after running {} ms without a break",
                Named(&name),
                now.duration_since(seen.since).as_millis()
            );
        }
        seen.switches = switches;
        seen.since = now;
        return;
    }
    let so_far = now.duration_since(seen.since);
    if seen.reported.is_some() || so_far < threshold {
        return;
    }
    let Some((id, name)) = identify(stats, switches) else {
        return;
    };
    stats.stalls.fetch_add(1, Relaxed);
    log::warn!(
        "loom: loop {index} stalled: fiber {} (#{id}) has run for {} ms without yielding \
         (stall threshold {} ms); every other fiber of this loop waits. A fiber that \
         computes for long should call loom::yield_now now and then, and blocking calls \
         belong in loom::unblock",
        Named(&name),
        so_far.as_millis(),
        threshold.as_millis()
    );
    seen.reported = Some((id, name));
}

/// The id and name of the fiber loop `stats` runs, if it still runs the
/// one it ran at switch count `switches`.
fn identify(stats: &LoopStats, switches: u64) -> Option<(u64, FiberName)> {
    let closed = stats.closed.lock().unwrap_or_else(PoisonError::into_inner);
    if *closed {
        return None;
    }
    let control = stats.running.get_acquire().cast::<FiberControl>();
    if control.is_null() {
        return None;
    }
    // SAFETY: the loop has not closed, and cannot while this lock is held,
    // so its stacks — this control block's slot among them — stay mapped;
    // a slot's identity bytes are only ever accessed through SlotIdent's
    // atomics, so reading them while a spawn reuses the slot is defined
    // (and detected below).
    let (id, name) = unsafe { &*SlotIdent::of(control) }.read();
    // The identity's Acquire loads order this after them: a slot reused
    // since would show a moved count.
    (stats.switches.get() == switches).then_some((id, name))
}

/// A fiber's name for a log line: quoted, or `<unnamed>`.
struct Named<'a>(&'a FiberName);

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_str() {
            Some(name) => write!(f, "{name:?}"),
            None => f.write_str("<unnamed>"),
        }
    }
}
