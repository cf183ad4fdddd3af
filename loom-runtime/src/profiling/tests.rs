//! The zone machinery against the recorder, in both modes: names, nesting
//! and balance per fiber across switches, the depth limit, zones outside
//! fibers, and the profiler's lifetime rules.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use super::fiber::ZoneKind;
use super::lifetime::Lifetime;
use super::names::SlotNames;
use super::recorder::{self, Event, Mode};
use super::{MAX_FIBER_ZONES, Zone};

/// Runs `main` in a fresh one-loop runtime on this thread with the
/// recorder on in `mode`, and returns what it recorded.
/// The zone and track events of running `main` (the loop's plots, which
/// `plots.rs` tests, are left out).
fn record(mode: Mode, main: impl FnOnce() + 'static) -> Vec<Event> {
    let rt = crate::rt::Builder::new()
        .fibers(8)
        .build()
        .expect("build a runtime");
    recorder::start(mode);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| rt.run(main)));
    let events = recorder::stop();
    if let Err(payload) = outcome {
        panic::resume_unwind(payload);
    }
    events
        .into_iter()
        .filter(|event| !matches!(event, Event::Plot(..)))
        .collect()
}

/// Checks the stream is well nested as Tracy sees it: a stack machine per
/// track (the thread's, and each fiber track while entered) never pops an
/// empty stack, fiber enter/leave alternate, and everything is closed at
/// the end. In replay mode there is only the thread's track, so it also
/// checks that no zone stays open across a switch.
fn assert_well_nested(events: &[Event]) {
    let mut thread_depth = 0usize;
    let mut fiber_depths: HashMap<&str, usize> = HashMap::new();
    let mut entered: Option<&str> = None;
    for (i, event) in events.iter().enumerate() {
        let depth = match entered {
            Some(track) => fiber_depths.entry(track).or_default(),
            None => &mut thread_depth,
        };
        match *event {
            Event::Begin(_) => *depth += 1,
            Event::End => {
                assert!(*depth > 0, "event {i}: end without a begin in {events:#?}");
                *depth -= 1;
            }
            Event::Enter(track) => {
                assert!(entered.is_none(), "event {i}: enter while in a fiber");
                entered = Some(track);
            }
            Event::Leave => {
                assert!(entered.is_some(), "event {i}: leave outside a fiber");
                entered = None;
            }
            Event::ThreadName(_) | Event::Plot(..) => {}
        }
    }
    assert!(entered.is_none(), "a fiber track was never left");
    assert_eq!(thread_depth, 0, "zones left open on the thread's track");
    for (track, depth) in fiber_depths {
        assert_eq!(depth, 0, "zones left open on fiber track {track}");
    }
}

/// The fiber-track names, as `fiber-<slot>`, checking they are the loop-0
/// names `names.rs` makes (`loom-loop-0/..` or `loom-loop-0#<k>/..` when
/// other tests' runtimes hold the first set).
fn slot_of(track: &str) -> &str {
    let (set, slot) = track.split_once('/').expect("loop/slot");
    assert!(
        set == "loom-loop-0" || set.starts_with("loom-loop-0#"),
        "unexpected track name {track}"
    );
    slot
}

/// `events` with every fiber-track name replaced by its slot part.
fn by_slot(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|event| match event {
            Event::Enter(track) => Event::Enter(slot_of(track)),
            other => other,
        })
        .collect()
}

use Event::{Begin, End, Enter, Leave, ThreadName};

/// Nested zones, open across a yield.
fn fiber_a() {
    let _outer = crate::zone!("a.outer");
    let _inner = crate::zone!("a.inner");
    crate::yield_now();
}

/// Nested zones open across a sleep (a suspension, not a yield), then a
/// second zone open across a yield.
fn fiber_b() {
    let _outer = crate::zone!("b.outer");
    {
        let _inner = crate::zone!("b.inner");
        crate::time::sleep(Duration::from_millis(1)).unwrap();
    }
    let _tail = crate::zone!("b.tail");
    crate::yield_now();
}

fn two_fibers() {
    let a = crate::spawn(fiber_a);
    let b = crate::spawn(fiber_b);
    a.join().unwrap();
    b.join().unwrap();
}

#[test]
fn replay_begins_open_zones_again_in_every_run_slice() {
    let events = record(Mode::Replay, two_fibers);
    assert_well_nested(&events);
    #[rustfmt::skip]
    let expected = [
        ThreadName("loom-loop-0"),
        // main spawns both and waits for a; a's first slice, up to its yield:
        Begin("a.outer"), Begin("a.inner"), End, End,
        // b's first slice, up to its sleep:
        Begin("b.outer"), Begin("b.inner"), End, End,
        // a again: both zones begun again, then ended as a returns:
        Begin("a.outer"), Begin("a.inner"), End, End,
        // (main runs and waits for b: no zones) b after its sleep:
        Begin("b.outer"), Begin("b.inner"), End, Begin("b.tail"), End, End,
        // b after its yield:
        Begin("b.outer"), Begin("b.tail"), End, End,
    ];
    assert_eq!(events, expected);
}

#[test]
fn fiber_tracks_enter_and_leave_around_every_resume() {
    let events = record(Mode::FiberTracks, two_fibers);
    assert_well_nested(&events);
    #[rustfmt::skip]
    let expected = [
        ThreadName("loom-loop-0"),
        // main is slot 0, a slot 1, b slot 2; zones stay open on their
        // fiber's track across its switches:
        Enter("fiber-0"), Leave,
        Enter("fiber-1"), Begin("a.outer"), Begin("a.inner"), Leave,
        Enter("fiber-2"), Begin("b.outer"), Begin("b.inner"), Leave,
        Enter("fiber-1"), End, End, Leave,
        Enter("fiber-0"), Leave,
        Enter("fiber-2"), End, Begin("b.tail"), Leave,
        Enter("fiber-2"), End, End, Leave,
        Enter("fiber-0"), Leave,
    ];
    assert_eq!(by_slot(events), expected);
}

#[test]
fn track_names_are_per_slot_of_one_set() {
    let events = record(Mode::FiberTracks, two_fibers);
    let mut tracks: Vec<&str> = events
        .iter()
        .filter_map(|event| match *event {
            Enter(track) => Some(track),
            _ => None,
        })
        .collect();
    assert_eq!(tracks.len(), 8, "one enter per resume");
    tracks.sort_unstable();
    tracks.dedup();
    assert_eq!(tracks.len(), 3, "main, a and b: {tracks:?}");
    let set = |track: &'static str| track.split_once('/').unwrap().0;
    assert!(
        tracks.iter().all(|track| set(track) == set(tracks[0])),
        "one runtime's loop uses one set: {tracks:?}"
    );
}

/// Opens `n` nested zones and yields at the deepest.
fn nest(n: usize) {
    let _zone = crate::zone!("deep");
    if n > 1 {
        nest(n - 1);
    } else {
        crate::yield_now();
    }
}

const DEEP: usize = MAX_FIBER_ZONES + 4;

fn deep_then_shallow() {
    crate::spawn(|| {
        nest(DEEP);
        // The count is right again after the overflow:
        let _after = crate::zone!("after");
    })
    .join()
    .unwrap();
}

#[test]
fn replay_records_the_outermost_zones_past_the_depth_limit() {
    let events = record(Mode::Replay, deep_then_shallow);
    assert_well_nested(&events);
    let deep = |n| std::iter::repeat_n(Begin("deep"), n);
    let ends = |n| std::iter::repeat_n(End, n);
    let mut expected = vec![ThreadName("loom-loop-0")];
    // First slice: only the outermost MAX_FIBER_ZONES are begun, and the
    // switch-out ends exactly those.
    expected.extend(deep(MAX_FIBER_ZONES).chain(ends(MAX_FIBER_ZONES)));
    // Second slice: begun again; the deeper ones end without a trace.
    expected.extend(deep(MAX_FIBER_ZONES).chain(ends(MAX_FIBER_ZONES)));
    expected.extend([Begin("after"), End]);
    assert_eq!(events, expected);
}

#[test]
fn fiber_tracks_have_no_depth_limit() {
    let events = record(Mode::FiberTracks, deep_then_shallow);
    assert_well_nested(&events);
    let begins = events.iter().filter(|e| **e == Begin("deep")).count();
    assert_eq!(begins, DEEP);
}

#[test]
fn a_panicking_fiber_ends_its_zones_as_it_unwinds() {
    for mode in [Mode::Replay, Mode::FiberTracks] {
        let events = record(mode, || {
            let result = crate::spawn(|| {
                let _zone = crate::zone!("doomed");
                crate::yield_now();
                panic!("expected in a test: a fiber panics inside a zone");
            })
            .join();
            assert!(result.is_err());
        });
        assert_well_nested(&events);
        let begins = events.iter().filter(|e| **e == Begin("doomed")).count();
        assert_eq!(begins, if mode == Mode::Replay { 2 } else { 1 });
    }
}

#[test]
fn replay_ends_forgotten_and_escaped_zones_when_their_fiber_switches_out() {
    let events = record(Mode::Replay, || {
        // Forgotten: ended at every switch-out until the fiber finishes.
        crate::spawn(|| {
            std::mem::forget(crate::zone!("forgotten"));
            crate::yield_now();
        })
        .join()
        .unwrap();
        // Escaped: returned to main and dropped there, in main's slice,
        // where ending it would close one of main's zones.
        let _main_zone = crate::zone!("main");
        let escaped: Zone = crate::spawn(|| crate::zone!("escaped")).join().unwrap();
        drop(escaped);
    });
    assert_well_nested(&events);
    #[rustfmt::skip]
    let expected = [
        ThreadName("loom-loop-0"),
        Begin("forgotten"), End,
        Begin("forgotten"), End,
        Begin("main"), End,
        Begin("escaped"), End,
        Begin("main"), End,
    ];
    assert_eq!(events, expected);
}

#[test]
fn zones_outside_fibers_begin_and_end_directly() {
    recorder::start(Mode::Replay);
    {
        let outer = crate::zone!("plain.outer");
        assert!(matches!(outer.kind, ZoneKind::Plain));
        let _inner = crate::zone!(concat!(module_path!(), "::inner"));
    }
    let events = recorder::stop();
    assert_eq!(
        events,
        [
            Begin("plain.outer"),
            Begin("loom_runtime::profiling::tests::inner"),
            End,
            End
        ]
    );
}

#[test]
fn zones_are_off_while_nothing_records() {
    // No recorder (no profiler): nothing emitted, nothing to end, in a
    // runtime or out of one.
    let zone = crate::zone!("off");
    assert!(matches!(zone.kind, ZoneKind::Off));
    drop(zone);
    crate::rt::Builder::new()
        .fibers(4)
        .build()
        .unwrap()
        .run(|| assert!(matches!(crate::zone!("off").kind, ZoneKind::Off)));
}

#[test]
fn the_profiler_starts_once_is_shared_and_never_restarts() {
    let lifetime = Lifetime::new();
    let (mut starts, mut stops) = (0, 0);
    assert!(!lifetime.is_running());
    assert!(
        !lifetime.shut_down(|| stops += 1, Duration::ZERO),
        "not started"
    );
    assert!(lifetime.acquire(|| starts += 1));
    assert!(
        lifetime.acquire(|| starts += 1),
        "a second runtime shares it"
    );
    assert_eq!(starts, 1);
    lifetime.release();
    assert!(
        !lifetime.shut_down(|| stops += 1, Duration::ZERO),
        "one runtime still holds it"
    );
    assert!(lifetime.is_running());
    lifetime.release();
    assert!(lifetime.is_running(), "kept for the runtimes to come");
    assert!(
        lifetime.acquire(|| starts += 1),
        "a later runtime shares it"
    );
    lifetime.release();
    assert_eq!(starts, 1);
    assert!(lifetime.shut_down(|| stops += 1, Duration::ZERO));
    assert_eq!(stops, 1);
    assert!(!lifetime.is_running());
    assert!(!lifetime.shut_down(|| stops += 1, Duration::ZERO));
    assert_eq!(stops, 1, "stopped once");
    // Tracy cannot restart: later runtimes run unprofiled.
    assert!(!lifetime.acquire(|| starts += 1));
    assert_eq!(starts, 1);
    assert!(!lifetime.enter_plain(), "no zones after the shutdown");
}

#[test]
fn the_shutdown_waits_for_plain_zones_and_gives_up_rather_than_free_under_one() {
    let lifetime = Lifetime::new();
    assert!(!lifetime.enter_plain(), "no zones before the start");
    assert!(lifetime.acquire(|| ()));
    lifetime.release();
    assert!(lifetime.enter_plain());
    let mut stopped = false;
    assert!(!lifetime.shut_down(|| stopped = true, Duration::from_millis(20)));
    assert!(!stopped, "a plain zone is still open");
    lifetime.leave_plain();
    assert!(!lifetime.enter_plain(), "given up on: off for good");

    // A zone that ends within the timeout lets the shutdown proceed.
    let lifetime = std::sync::Arc::new(Lifetime::new());
    assert!(lifetime.acquire(|| ()));
    lifetime.release();
    assert!(lifetime.enter_plain());
    let other = std::sync::Arc::clone(&lifetime);
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        other.leave_plain();
    });
    assert!(lifetime.shut_down(|| (), Duration::from_secs(10)));
    closer.join().unwrap();
}

#[test]
fn slot_names_are_leased_per_loop_and_reused() {
    // A loop index no runtime in these tests uses, so other tests do not
    // lease these sets meanwhile.
    const LOOP: usize = 9_001;
    let first = SlotNames::lease(LOOP);
    first.reserve(3);
    let second = SlotNames::lease(LOOP);
    second.reserve(2);
    let name = |names: &SlotNames, i| {
        // SAFETY: `reserve` made these: leaked, NUL-terminated strings.
        unsafe { std::ffi::CStr::from_ptr(names.get(i)) }
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(name(&first, 2), "loom-loop-9001/fiber-2");
    assert_eq!(name(&second, 1), "loom-loop-9001#1/fiber-1");
    let kept = first.get(1);
    drop(first);
    let again = SlotNames::lease(LOOP);
    again.reserve(5);
    assert_eq!(again.get(1), kept, "the same string, not a new one");
    assert_eq!(name(&again, 4), "loom-loop-9001/fiber-4");
}
