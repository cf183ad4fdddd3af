//! The unit tests' stand-in for Tracy: the same calls, logged into a
//! fixed-size buffer of the calling thread, while a test has switched the
//! thread's recorder on. The mode (replay or fiber tracks) is per thread
//! too, so one test run covers both.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char};

use super::SourceLocation;

/// How fibers' zones are kept well nested; what the features choose in a
/// real build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// `tracy`: open zones ended at switch-out, begun again at resume.
    Replay,
    /// `tracy-fibers`: fiber enter/leave around every resume.
    FiberTracks,
}

/// One backend call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Event {
    Begin(&'static str),
    End,
    Enter(&'static str),
    Leave,
    ThreadName(&'static str),
    Plot(&'static str, i64),
}

/// Events kept per recording; more fail the test in [`stop`].
pub(super) const CAPACITY: usize = 4096;

thread_local! {
    static MODE: Cell<Option<Mode>> = const { Cell::new(None) };
    static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
    static LOST: Cell<usize> = const { Cell::new(0) };
}

/// Switches this thread's recorder on, empty.
pub(super) fn start(mode: Mode) {
    EVENTS.with_borrow_mut(|events| {
        events.clear();
        events.reserve_exact(CAPACITY);
    });
    LOST.set(0);
    MODE.set(Some(mode));
}

/// Switches this thread's recorder off and returns what it recorded.
///
/// # Panics
///
/// If more than [`CAPACITY`] events were recorded.
pub(super) fn stop() -> Vec<Event> {
    MODE.set(None);
    let events = EVENTS.take();
    assert_eq!(LOST.get(), 0, "the recorder's buffer overflowed");
    events
}

/// The mode this thread records in, if its recorder is on.
pub(super) fn mode() -> Option<Mode> {
    MODE.get()
}

fn record(event: Event) {
    if mode().is_none() {
        return;
    }
    EVENTS.with_borrow_mut(|events| {
        // Within the capacity reserved at start: never reallocates.
        if events.len() < CAPACITY {
            events.push(event);
        } else {
            LOST.set(LOST.get() + 1);
        }
    });
}

/// Records [`Event::ThreadName`].
///
/// # Safety
///
/// None; `unsafe` as the Tracy call it stands in for.
pub(super) unsafe fn set_thread_name(name: &CStr) {
    if mode().is_some() {
        let name = name.to_str().expect("loop names are UTF-8").to_owned();
        record(Event::ThreadName(Box::leak(name.into_boxed_str())));
    }
}

/// Records [`Event::Plot`].
///
/// # Safety
///
/// None; `unsafe` as the Tracy call it stands in for.
pub(super) unsafe fn plot(name: &'static CStr, value: i64) {
    record(Event::Plot(
        name.to_str().expect("plot names are UTF-8"),
        value,
    ));
}

/// Records [`Event::Begin`].
///
/// # Safety
///
/// None; `unsafe` as the Tracy call it stands in for.
pub(super) unsafe fn zone_begin(location: &'static SourceLocation) {
    record(Event::Begin(location.name()));
}

/// Records [`Event::End`].
///
/// # Safety
///
/// None; `unsafe` as the Tracy call it stands in for.
pub(super) unsafe fn zone_end() {
    record(Event::End);
}

/// Records [`Event::Enter`].
///
/// # Safety
///
/// `name` is a NUL-terminated UTF-8 string that lives as long as the
/// process, as Tracy requires.
pub(super) unsafe fn fiber_enter(name: *const c_char) {
    // SAFETY: forwarded from this function's contract.
    let name = unsafe { CStr::from_ptr(name) };
    record(Event::Enter(name.to_str().expect("track names are UTF-8")));
}

/// Records [`Event::Leave`].
///
/// # Safety
///
/// None; `unsafe` as the Tracy call it stands in for.
pub(super) unsafe fn fiber_leave() {
    record(Event::Leave);
}
