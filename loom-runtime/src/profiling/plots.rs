//! A loop's gauges as Tracy plots (`loom-loop-0 runnable`, ...), one point
//! each per loop turn, so the timeline shows the run queue, the fibers
//! waiting on I/O and the stacks in use beside the zones.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::sync::{Mutex, PoisonError};

use crate::stats::{LoopStats, WaitKind};

/// The plotted gauges, in the order of [`values`].
const PLOTS: [&str; 6] = [
    "fibers live",
    "runnable",
    "waiting on I/O",
    "ops in flight",
    "timers armed",
    "stacks in use",
];

type Names = [&'static CStr; PLOTS.len()];

fn values(stats: &LoopStats) -> [u64; PLOTS.len()] {
    [
        stats.live.get(),
        stats.runnable.get(),
        stats.waiting(WaitKind::Io).get(),
        stats.ops_started.get().wrapping_sub(stats.ops_ended.get()),
        stats.timers.get(),
        stats.stacks_in_use.get(),
    ]
}

/// Plots loop `index`'s gauges, as [`EventLoop::publish_gauges`] just
/// wrote them; nothing while the profiler is not running.
///
/// [`EventLoop::publish_gauges`]: crate::rt::event_loop::EventLoop::publish_gauges
pub(crate) fn plot_loop(index: usize, stats: &LoopStats) {
    if !super::enabled() {
        return;
    }
    let names = names_of(index);
    for (name, value) in names.iter().zip(values(stats)) {
        // SAFETY: a loop thread of a profiled runtime (`enabled()` held),
        // which keeps the profiler running; the names live for ever.
        unsafe { super::backend::plot(name, i64::try_from(value).unwrap_or(i64::MAX)) };
    }
}

/// Makes loop `index`'s plot names on the calling (loop) thread, as it
/// starts: they allocate once, and a loop's turns must not.
pub(crate) fn prepare(index: usize) {
    names_of(index);
}

/// Loop `index`'s plot names. Tracy keys a plot by its name's address, so
/// each index gets its names once per process (leaked: a few bytes per
/// loop index ever used), cached on the loop's thread.
fn names_of(index: usize) -> &'static Names {
    thread_local!(static MINE: Cell<Option<(usize, &'static Names)>> = const { Cell::new(None) });
    if let Some((cached, names)) = MINE.get()
        && cached == index
    {
        return names;
    }
    static ALL: Mutex<Vec<&'static Names>> = Mutex::new(Vec::new());
    let mut all = ALL.lock().unwrap_or_else(PoisonError::into_inner);
    while all.len() <= index {
        let loop_index = all.len();
        let names = PLOTS.map(|plot| {
            let name = CString::new(format!("loom-loop-{loop_index} {plot}"))
                .expect("no NUL in plot names");
            &*Box::leak(name.into_boxed_c_str())
        });
        all.push(Box::leak(Box::new(names)));
    }
    let names = all[index];
    MINE.set(Some((index, names)));
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::recorder::{self, Event, Mode};

    #[test]
    fn a_turn_plots_each_gauge_under_the_loops_name() {
        let stats = LoopStats::default();
        stats.live.set(3);
        stats.runnable.set(2);
        stats.ops_started.set(10);
        stats.ops_ended.set(9);
        recorder::start(Mode::Replay);
        plot_loop(1, &stats);
        let events = recorder::stop();
        assert_eq!(
            events,
            [
                Event::Plot("loom-loop-1 fibers live", 3),
                Event::Plot("loom-loop-1 runnable", 2),
                Event::Plot("loom-loop-1 waiting on I/O", 0),
                Event::Plot("loom-loop-1 ops in flight", 1),
                Event::Plot("loom-loop-1 timers armed", 0),
                Event::Plot("loom-loop-1 stacks in use", 0),
            ]
        );
        // Off: nothing.
        plot_loop(1, &stats);
        assert!(std::ptr::eq(names_of(1), names_of(1)));
    }
}
