//! The loop this thread is running, as the few handles the layers below
//! the event loop need — so that they can ask "is this a loop thread?" and
//! "which fiber is running?" without importing the event loop.
//!
//! The event loop installs its handles when it starts on a thread
//! ([`install`]) and removes them when it stops (dropping [`Installed`]).
//! The loop itself is kept type-erased here; only `rt::event_loop` turns it
//! back into an `EventLoop`. Reading the handles is one thread-local load:
//! nothing is written per fiber switch.

use std::cell::Cell;
use std::ptr::{self, NonNull};

use crate::stack::control::FiberControl;

/// The scheduler's record of the fiber it is running (null in loop code).
pub(crate) use crate::stats::RunningSlot;

#[derive(Clone, Copy)]
struct Handles {
    /// The `rt::event_loop::EventLoop` running on this thread, or null.
    event_loop: *const (),
    /// That loop's scheduler's running-fiber slot, or null.
    running: *const RunningSlot,
}

impl Handles {
    const NONE: Handles = Handles {
        event_loop: ptr::null(),
        running: ptr::null(),
    };
}

thread_local! {
    static CURRENT: Cell<Handles> = const { Cell::new(Handles::NONE) };
}

/// The event loop running on this thread (type-erased), or null.
#[inline]
pub(crate) fn event_loop() -> *const () {
    CURRENT.with(|current| current.get().event_loop)
}

/// Whether this thread is running a loom loop.
#[inline]
pub(crate) fn in_loop() -> bool {
    !event_loop().is_null()
}

/// The fiber running on this thread's loop: `None` off a loop thread,
/// `Some(None)` in the loop's own code between fibers.
#[inline]
#[cfg_attr(
    not(any(feature = "tracy", test)),
    expect(dead_code, reason = "used by the profiling hooks only")
)]
pub(crate) fn running_fiber() -> Option<Option<NonNull<FiberControl>>> {
    let running = CURRENT.with(|current| current.get().running);
    // SAFETY: `install`'s contract keeps the slot valid while it is set.
    (!running.is_null()).then(|| NonNull::new(unsafe { (*running).get() }.cast::<FiberControl>()))
}

/// Makes `event_loop` and its scheduler's `running` slot this thread's
/// current loop until the returned guard is dropped.
///
/// # Safety
/// Both stay valid, and in place, until the guard is dropped; the guard is
/// dropped on this thread.
///
/// # Panics
/// If a loop is already current on this thread.
pub(crate) unsafe fn install(event_loop: *const (), running: *const RunningSlot) -> Installed {
    let previous = CURRENT.with(|current| {
        current.replace(Handles {
            event_loop,
            running,
        })
    });
    assert!(
        previous.event_loop.is_null(),
        "a loom runtime is already running on this thread"
    );
    Installed {
        _not_send: NonNull::dangling(),
    }
}

/// The current loop's handles, installed until this is dropped.
#[derive(Debug)]
pub(crate) struct Installed {
    /// Dropped on the thread that installed it.
    _not_send: NonNull<()>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(Handles::NONE));
    }
}
