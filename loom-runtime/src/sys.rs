//! Thin helpers over libc shared by every module that talks to the kernel.

use std::io;

/// Calls a libc function and turns the C convention (`-1` plus `errno`) into
/// `io::Result`, so error handling lives in one place rather than in a
/// hundred `if ret < 0` checks.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the caller of `syscall!` upholds the libc function's own
        // contract for the arguments it passes; see each call site.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// The system page size, read once.
pub(crate) fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as usize } else { 4096 };
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// Rounds `n` up to a multiple of `align` (a power of two).
pub(crate) const fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// An `io::Error` of kind `Interrupted`, the error every blocking call of a
/// cancelled fiber returns. Kind-only, because a message would be boxed and
/// cancellation must not allocate.
pub(crate) fn interrupted() -> io::Error {
    io::Error::from(io::ErrorKind::Interrupted)
}
