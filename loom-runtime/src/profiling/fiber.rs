//! Opening and ending zones — in fibers, in loop code, on plain threads —
//! and the scheduler's hooks that keep a fiber's zones well nested on its
//! thread's track across switches.

use std::marker::PhantomData;

use super::record::SourceLocation;
use super::{Zone, backend, by_mode, enabled};
use crate::context;
use crate::stack::control::FiberControl;

/// What a [`Zone`] emitted, so its drop ends exactly that.
#[derive(Debug)]
pub(super) enum ZoneKind {
    /// Nothing (the profiler was not running): nothing to end.
    Off,
    /// A zone on a loop thread, emitted directly: loop code outside any
    /// fiber, or a fiber's zone in fiber-tracks mode. The runtime keeps the
    /// profiler running while the thread is its loop.
    Loop,
    /// A zone on a plain thread, holding one of the profiler's plain-zone
    /// tickets: the profiler is not shut down until it ends.
    Plain,
    /// A zone on this fiber's stack of open zones (replay mode), emitted if
    /// it is within [`MAX_FIBER_ZONES`](super::MAX_FIBER_ZONES) of the bottom.
    #[cfg(any(test, not(feature = "tracy-fibers")))]
    Fiber(std::ptr::NonNull<FiberControl>),
}

impl Zone {
    /// Opens a zone at `location`; called by `zone!`. A no-op (one relaxed
    /// load) while the profiler is not running.
    #[doc(hidden)]
    #[inline]
    pub fn begin(location: &'static SourceLocation) -> Zone {
        let kind = if enabled() {
            begin(location)
        } else {
            ZoneKind::Off
        };
        Zone {
            kind,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Zone {
    #[inline]
    fn drop(&mut self) {
        if !matches!(self.kind, ZoneKind::Off) {
            end(&self.kind);
        }
    }
}

fn begin(location: &'static SourceLocation) -> ZoneKind {
    match context::running_fiber() {
        None => begin_plain(location),
        Some(None) => {
            // A runtime that got no count started after the shutdown,
            // when `enabled()` can no longer hold.
            // SAFETY: a loop thread and `enabled()` held, so its runtime
            // holds a count on the running profiler.
            unsafe { backend::zone_begin(location) };
            ZoneKind::Loop
        }
        Some(Some(fiber)) => by_mode! {
            tracks => {
                let _ = fiber;
                // SAFETY: as above; the zone goes to the fiber's track.
                unsafe { backend::zone_begin(location) };
                ZoneKind::Loop
            },
            replay => {
                // SAFETY: the running fiber's control block is valid while
                // it runs, and it is running: we are on it.
                let profile = unsafe { &fiber.as_ref().profile };
                if profile.push(location) {
                    // SAFETY: as for loop code above.
                    unsafe { backend::zone_begin(location) };
                }
                ZoneKind::Fiber(fiber)
            },
        },
    }
}

/// A zone on a thread that is not a loop: it takes a plain-zone ticket so
/// a shutdown cannot free the profiler under it.
fn begin_plain(location: &'static SourceLocation) -> ZoneKind {
    #[cfg(not(test))]
    if !super::lifetime::PROFILER.enter_plain() {
        return ZoneKind::Off;
    }
    // SAFETY: the ticket taken above keeps the profiler running until the
    // zone's end returns it (in the unit tests there is no profiler to
    // keep: the recorder is thread-local).
    unsafe { backend::zone_begin(location) };
    ZoneKind::Plain
}

#[inline(never)]
fn end(kind: &ZoneKind) {
    match *kind {
        ZoneKind::Off => {}
        ZoneKind::Plain => {
            // SAFETY: this zone's ticket keeps the profiler running.
            unsafe { backend::zone_end() };
            #[cfg(not(test))]
            super::lifetime::PROFILER.leave_plain();
        }
        ZoneKind::Loop => {
            // A zone carried out of its runtime (returned from `run`) stays
            // open: that runtime no longer keeps the profiler alive, so
            // ending it here could race the shutdown.
            if context::in_loop() {
                // SAFETY: a loop thread, whose runtime keeps the profiler
                // running (see `begin`).
                unsafe { backend::zone_end() };
            }
        }
        #[cfg(any(test, not(feature = "tracy-fibers")))]
        ZoneKind::Fiber(owner) => {
            let current = context::running_fiber().flatten();
            // A zone carried out of its fiber (returned from it) is left on
            // the owner's stack, so the owner's switch-outs keep ending it
            // until the owner finishes; ending it here, in another fiber's
            // run slice, would close one of that fiber's zones.
            if current == Some(owner) {
                // SAFETY: `owner` is the running fiber, whose block is valid.
                let profile = unsafe { &owner.as_ref().profile };
                if profile.pop() {
                    // SAFETY: on a loop thread, as in `begin`.
                    unsafe { backend::zone_end() };
                }
            }
        }
    }
}

/// Called by `Scheduler::resume` just before it switches into `fiber`:
/// enters the fiber's track, or begins its open zones again. Returns
/// whether it did, for [`after_resume`].
#[inline]
pub(crate) fn before_resume(fiber: &FiberControl) -> bool {
    if !enabled() {
        return false;
    }
    by_mode! {
        tracks => {
            let track = fiber.profile.track.get();
            debug_assert!(!track.is_null(), "spawn names every fiber's track");
            // SAFETY: on a loop thread whose runtime keeps the profiler
            // running (see `begin`); `track` is a process-lifetime string
            // (`names`), as Tracy, which keys the track by it, requires.
            unsafe { backend::fiber_enter(track) };
        },
        replay => {
            for location in fiber.profile.recorded() {
                // SAFETY: on a loop thread, as above.
                unsafe { backend::zone_begin(location) };
            }
        },
    }
    true
}

/// Called by `Scheduler::resume` as soon as `fiber` switched back out
/// (suspended, yielded or returned), with what [`before_resume`] returned:
/// leaves the fiber's track, or ends its open zones, innermost first. A
/// fiber that returned normally has none open; one that forgot a zone
/// (`mem::forget`) or let one escape gets it ended here.
#[inline]
pub(crate) fn after_resume(fiber: &FiberControl, profiled: bool) {
    if !profiled {
        return;
    }
    by_mode! {
        tracks => {
            let _ = fiber;
            // SAFETY: as in `before_resume`; the fiber was entered there.
            unsafe { backend::fiber_leave() };
        },
        replay => {
            for _ in fiber.profile.recorded() {
                // SAFETY: as in `before_resume`.
                unsafe { backend::zone_end() };
            }
        },
    }
}
