//! The calls into Tracy's C API. Every one but `startup` needs the client
//! running for its whole duration; `lifetime` says who may rely on that.

use std::ffi::CStr;

use tracy_client_sys as sys;

use super::SourceLocation;

/// Starts the client: its queue, its worker thread, the listening socket
/// (loopback only: `only-localhost`).
///
/// # Safety
///
/// Called once per process, before any other function here.
pub(super) unsafe fn startup() {
    // SAFETY: forwarded from this function's contract; Tracy's manual
    // lifetime wants exactly one start before any other call.
    unsafe { sys::___tracy_startup_profiler() }
}

/// Flushes what was collected to a connected viewer and frees the client.
///
/// # Safety
///
/// Called at most once, after `startup`, when no other call here is in
/// flight or will ever be made again (Tracy cannot be restarted: see the
/// `profiling` module documentation).
pub(super) unsafe fn shutdown() {
    // SAFETY: forwarded from this function's contract.
    unsafe { sys::___tracy_shutdown_profiler() }
}

/// Names the calling thread in Tracy, leaving its OS-level name as it was.
/// (Tracy renames the OS thread too; loop 0 runs on the caller's thread,
/// often the process's main thread, whose name `ps` shows as the
/// program's.)
///
/// # Safety
///
/// The client is running and stays running until this returns.
pub(super) unsafe fn set_thread_name(name: &CStr) {
    #[cfg(target_os = "linux")]
    let os_name = os_thread_name();
    // SAFETY: running (contract); `name` is NUL-terminated, and Tracy
    // copies it.
    unsafe { sys::___tracy_set_thread_name(name.as_ptr()) };
    #[cfg(target_os = "linux")]
    if let Some(os_name) = os_name {
        set_os_thread_name(&os_name);
    }
}

/// Begins a zone at `location` on the calling thread's current track.
///
/// # Safety
///
/// The client is running and stays running until this returns.
#[inline]
pub(super) unsafe fn zone_begin(location: &'static SourceLocation) {
    // SAFETY: running (contract). Tracy keeps the location's address and
    // reads it, and its strings, whenever the viewer asks: it is 'static.
    // The returned context is not needed to end the zone (see `zone_end`).
    let _ = unsafe { sys::___tracy_emit_zone_begin(&location.0, 1) };
}

/// Ends the innermost open zone on the calling thread's current track.
///
/// # Safety
///
/// The client is running and stays running until this returns.
#[inline]
pub(super) unsafe fn zone_end() {
    // Tracy ends the track's innermost zone; the context's id is only
    // checked with Tracy's `verify` feature (never enabled: the client is
    // built with TRACY_NO_VERIFY), so a replayed zone needs no id.
    // SAFETY: the client is running (contract).
    unsafe { sys::___tracy_emit_zone_end(sys::___tracy_c_zone_context { id: 0, active: 1 }) };
}

/// Switches the calling thread's events to the fiber track `name`.
///
/// # Safety
///
/// The client is running and stays running until this returns; `name` is
/// a NUL-terminated string that lives as long as the process (Tracy keys
/// the track by its address and reads it later).
#[cfg(feature = "tracy-fibers")]
#[inline]
pub(super) unsafe fn fiber_enter(name: *const std::ffi::c_char) {
    // SAFETY: forwarded from this function's contract.
    unsafe { sys::___tracy_fiber_enter(name) };
}

/// Switches the calling thread's events back to its own track.
///
/// # Safety
///
/// The client is running and stays running until this returns.
#[cfg(feature = "tracy-fibers")]
#[inline]
pub(super) unsafe fn fiber_leave() {
    // SAFETY: forwarded from this function's contract.
    unsafe { sys::___tracy_fiber_leave() };
}

/// Adds a point to the plot `name` (Tracy keys a plot by the name's
/// address).
///
/// # Safety
///
/// The client is running and stays running until this returns; `name`
/// lives as long as the process.
#[inline]
pub(super) unsafe fn plot(name: &'static CStr, value: i64) {
    // SAFETY: forwarded from this function's contract.
    unsafe { sys::___tracy_emit_plot_int(name.as_ptr(), value) };
}

/// The calling thread's OS-level name (at most 15 bytes and a NUL).
#[cfg(target_os = "linux")]
fn os_thread_name() -> Option<[u8; 16]> {
    let mut name = [0u8; 16];
    // SAFETY: `name` is a writable buffer of the length passed, 16 bytes
    // being the most a Linux thread name takes with its NUL.
    let rc = unsafe {
        libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr().cast(), name.len())
    };
    (rc == 0).then_some(name)
}

#[cfg(target_os = "linux")]
fn set_os_thread_name(name: &[u8; 16]) {
    // SAFETY: `name` holds the NUL-terminated string pthread_getname_np
    // wrote into it, and the call names the calling thread only.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr().cast()) };
}
