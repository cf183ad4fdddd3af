//! What the profiler records that the fiber core embeds: a zone's source
//! location, and a fiber's stack of open zones (or its track name). Plain
//! data, below the fiber core; the hooks that emit it are in `fiber.rs`.

#[cfg(any(feature = "tracy", test))]
use std::cell::Cell;

/// The most zones one fiber can have open at once and still see them all
/// in Tracy in `tracy` (replay) mode; see the module documentation.
pub const MAX_FIBER_ZONES: usize = 16;

/// Where a zone is opened, as Tracy wants it: a `static` per `zone!` call
/// site, whose address Tracy uses as the location's identity.
#[cfg(any(feature = "tracy", test))]
#[doc(hidden)]
#[repr(transparent)]
#[derive(Debug)]
pub struct SourceLocation(pub(super) RawLocation);

#[cfg(feature = "tracy")]
use tracy_client_sys::___tracy_source_location_data as RawLocation;

/// The layout of Tracy's `___tracy_source_location_data`, for the unit
/// tests' recorder when Tracy itself is not compiled in.
#[cfg(all(test, not(feature = "tracy")))]
#[repr(C)]
#[derive(Debug)]
pub(super) struct RawLocation {
    name: *const std::ffi::c_char,
    function: *const std::ffi::c_char,
    file: *const std::ffi::c_char,
    line: u32,
    color: u32,
}

// SAFETY: a SourceLocation holds pointers to NUL-terminated `'static`
// string literals (checked by `new`, the only constructor) and two
// integers, and nothing ever writes to it: it has no interior mutability
// and lives in an immutable `static`. Tracy reads it from any thread (its
// worker thread reads the strings when the viewer asks for them), which
// is sound because reading immutable, immortal data is.
#[cfg(any(feature = "tracy", test))]
unsafe impl Sync for SourceLocation {}

#[cfg(any(feature = "tracy", test))]
impl SourceLocation {
    /// A location named `name` (also used as its function name) at
    /// `file:line`. `name` and `file` must end with their only NUL; as the
    /// macro evaluates this in a `static`, a violation is a compile error.
    pub const fn new(name: &'static str, file: &'static str, line: u32) -> SourceLocation {
        let name = c_str(name).as_ptr();
        SourceLocation(RawLocation {
            name,
            function: name,
            file: c_str(file).as_ptr(),
            line,
            color: 0,
        })
    }

    /// The zone's name.
    #[cfg(test)]
    pub(super) fn name(&self) -> &'static str {
        // SAFETY: `new` took the pointer from a NUL-terminated `'static`
        // string that is valid UTF-8.
        let name = unsafe { std::ffi::CStr::from_ptr(self.0.name) };
        name.to_str().expect("built from a &str")
    }
}

#[cfg(any(feature = "tracy", test))]
const fn c_str(s: &'static str) -> &'static std::ffi::CStr {
    match std::ffi::CStr::from_bytes_with_nul(s.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("loom: a zone name must not contain NUL"),
    }
}

#[cfg(any(feature = "tracy", test))]
/// What a fiber's control block keeps for profiling: its open zones
/// (replay) or its track's name (fiber tracks).
pub(crate) struct FiberProfile {
    /// Zones open in this fiber, counting those past `MAX_FIBER_ZONES`.
    #[cfg(any(test, not(feature = "tracy-fibers")))]
    depth: Cell<usize>,
    /// The first `MAX_FIBER_ZONES` of them, outermost first.
    #[cfg(any(test, not(feature = "tracy-fibers")))]
    open: [Cell<Option<&'static SourceLocation>>; MAX_FIBER_ZONES],
    /// The fiber's Tracy fiber name: its stack slot's, set at spawn.
    #[cfg(any(test, feature = "tracy-fibers"))]
    pub(super) track: Cell<*const std::ffi::c_char>,
}

#[cfg(any(feature = "tracy", test))]
impl FiberProfile {
    pub(crate) const fn new() -> FiberProfile {
        FiberProfile {
            #[cfg(any(test, not(feature = "tracy-fibers")))]
            depth: Cell::new(0),
            #[cfg(any(test, not(feature = "tracy-fibers")))]
            open: [const { Cell::new(None) }; MAX_FIBER_ZONES],
            #[cfg(any(test, feature = "tracy-fibers"))]
            track: Cell::new(std::ptr::null()),
        }
    }

    /// Sets the fiber's track name: a process-lifetime NUL-terminated
    /// string, unique to the fiber's stack slot among live fibers.
    #[cfg(any(test, feature = "tracy-fibers"))]
    pub(crate) fn set_track(&self, name: *const std::ffi::c_char) {
        self.track.set(name);
    }

    /// Records a zone opened by the fiber; returns whether it is within the
    /// recorded depth (and so is to be emitted).
    #[cfg(any(test, not(feature = "tracy-fibers")))]
    pub(super) fn push(&self, location: &'static SourceLocation) -> bool {
        let depth = self.depth.get();
        self.depth.set(depth + 1);
        match self.open.get(depth) {
            Some(slot) => {
                slot.set(Some(location));
                true
            }
            None => {
                too_deep();
                false
            }
        }
    }

    /// Forgets the innermost open zone; returns whether it had been
    /// emitted (and so is to be ended). An empty stack — a zone dropped
    /// in the fiber that got its slot after its owner's — pops nothing.
    #[cfg(any(test, not(feature = "tracy-fibers")))]
    pub(super) fn pop(&self) -> bool {
        let depth = self.depth.get();
        if depth == 0 {
            return false;
        }
        self.depth.set(depth - 1);
        depth <= MAX_FIBER_ZONES
    }

    /// The open zones that were emitted, outermost first.
    #[cfg(any(test, not(feature = "tracy-fibers")))]
    pub(super) fn recorded(&self) -> impl Iterator<Item = &'static SourceLocation> {
        let depth = self.depth.get().min(MAX_FIBER_ZONES);
        self.open[..depth].iter().map(|slot| {
            slot.get()
                .expect("the recorded part of the stack is filled")
        })
    }
}

#[cfg(any(test, all(feature = "tracy", not(feature = "tracy-fibers"))))]
#[cold]
fn too_deep() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "loom: a fiber has more than {MAX_FIBER_ZONES} profiler zones open at once; \
             the deeper ones are not recorded (this warning is logged once)"
        );
    }
}
