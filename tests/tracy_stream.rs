//! What a Tracy viewer receives from loom: a fake viewer (tests/tracy/)
//! connects to the client after a known program ran, decodes the event
//! stream, asks the client for the names behind its pointers, and checks
//! that the program's zones arrive on the tracks loom promises — the loop
//! thread's in replay mode (`tracy`), a fiber slot's in fiber-tracks mode
//! (`tracy-fibers`) — and that loop 0's gauges arrive as plots under
//! their names, with the values the program gave them. A file of its own:
//! without `ondemand` the client serves a single viewer per process, and
//! tests/profiling.rs's handshake test takes its own process's.
#![cfg(all(feature = "tracy", target_os = "linux"))]

mod tracy;

use std::time::{Duration, Instant};

use loom_tests::runtime;
use tracy::listener::tracy_listener;
use tracy::viewer::{Connection, Trace, Track};

/// Bounds the whole exchange: a missing zone fails the test after this.
const TIMEOUT: Duration = Duration::from_secs(20);

// The program's zone names (`zone!` takes literals, as `concat!` does).
const FILLER: &str = "tracy_stream::filler";
const ROOT: &str = "tracy_stream::root";
const IN_FIBER: &str = "tracy_stream::in_fiber";
const AFTER_SLEEP: &str = "tracy_stream::after_sleep";

// Two of the loop's plots (loom-runtime's profiling/plots.rs).
const FIBERS_LIVE: &str = "loom-loop-0 fibers live";
const RUNNABLE: &str = "loom-loop-0 runnable";

/// Enough zones (some 840 KB of events) to fill several frames and wrap
/// the client's ring buffer, so the zones after them arrive only if the
/// LZ4 stream is decoded right across frames.
const FILLERS: usize = 60_000;

/// Runs the program whose zones the viewer looks for; returns the id of
/// the thread it ran on (loop 0 runs on the caller's).
fn program() -> u32 {
    runtime().run(|| {
        for _ in 0..FILLERS {
            let _filler = loom::__private::zone!("tracy_stream::filler");
        }
        let _root = loom::__private::zone!("tracy_stream::root");
        // Tracy never sees this name: a fiber track is named for the stack
        // slot the fiber runs on (`loom-loop-0/fiber-1`).
        let child = loom::fiber::Builder::new()
            .name("stream-fiber")
            .spawn(|| {
                let _zone = loom::__private::zone!("tracy_stream::in_fiber");
                // Switched out with the zone open: replay mode ends it here
                // and begins it again on resumption, fiber tracks keep it.
                loom::time::sleep(Duration::from_millis(1)).unwrap();
                let _inner = loom::__private::zone!("tracy_stream::after_sleep");
            })
            .unwrap();
        child.join().unwrap();
    });
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap()
}

#[test]
fn a_viewer_receives_the_programs_zones_on_their_tracks() {
    let loop_thread = program();
    let deadline = Instant::now() + TIMEOUT;
    let (mut viewer, welcome) = Connection::open(tracy_listener(TIMEOUT), deadline).unwrap();
    assert_eq!(welcome.pid, u64::from(std::process::id()));

    // The program ended before the viewer connected, so the client has
    // every event queued, and sends each thread's in the order the thread
    // emitted them (names come later, once asked for): once `after_sleep`
    // is in, so is every zone begun before it.
    let mut trace = Trace::default();
    while let Some(missing) = missing(&trace) {
        if let Err(error) = viewer.read_frame(&mut trace) {
            panic!("{missing} ({error}); received {trace}");
        }
    }

    assert_eq!(trace.tracks_of(FILLER).len(), FILLERS, "{trace}");
    let (root, in_fiber, after_sleep) = (
        trace.tracks_of(ROOT),
        trace.tracks_of(IN_FIBER),
        trace.tracks_of(AFTER_SLEEP),
    );
    if cfg!(feature = "tracy-fibers") {
        assert_eq!(in_fiber.len(), 1, "kept open across the switch: {trace}");
        assert_eq!(in_fiber, after_sleep, "one fiber, one track: {trace}");
        for track in [root[0], in_fiber[0]] {
            let name = trace.track_name(track).unwrap_or_default();
            assert!(
                matches!(track, Track::Fiber(_)) && name.starts_with("loom-loop-0/fiber-"),
                "{name:?} ({track:?}) is not a slot's fiber track: {trace}"
            );
        }
        assert_ne!(root[0], in_fiber[0], "two fibers, two slots: {trace}");
    } else {
        assert!(in_fiber.len() >= 2, "begun in each run slice: {trace}");
        for track in root.iter().chain(&in_fiber).chain(&after_sleep) {
            assert_eq!(*track, Track::Thread(loop_thread), "{trace}");
        }
    }

    // A turn plots its gauges in one order, so the two plots' n-th points
    // are the same turn's; a fiber in the run queue is a live one.
    for (live, runnable) in trace.plot(FIBERS_LIVE).iter().zip(trace.plot(RUNNABLE)) {
        assert!(runnable <= live, "{runnable} runnable of {live}: {trace}");
    }
}

/// What the trace lacks before it can be checked, if anything: each zone
/// (under its name), the plot points below, and the client's answers to
/// all the queries its events called for (the fiber tracks' and the
/// plots' names).
fn missing(trace: &Trace) -> Option<String> {
    if let Some(name) = [FILLER, ROOT, IN_FIBER, AFTER_SLEEP]
        .into_iter()
        .find(|name| trace.tracks_of(name).is_empty())
    {
        return Some(format!("no zone {name}"));
    }
    // Points the program must have plotted: the root and its child live
    // while the child sleeps, and the child runnable once its timer fired.
    // Waited for, not just checked: with fiber tracks, zones come by the
    // client's serial queue and plots by the loop thread's, in no set
    // order, so the last zone is no sign the points before it are in.
    for (plot, least) in [(FIBERS_LIVE, 2.0), (RUNNABLE, 1.0)] {
        if !trace.plot(plot).iter().any(|&value| value >= least) {
            return Some(format!("no point >= {least} in plot {plot}"));
        }
    }
    trace.unanswered()
}
