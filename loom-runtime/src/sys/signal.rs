//! Signal sets and thread signal masks: which signals `loom::signal` may
//! take over, and the mask every thread loom starts puts up first thing.
//!
//! It lives in the platform layer because the loop threads (`rt`) and the
//! blocking pool's workers set their masks here, below everything else,
//! and `signal/` builds its sets with the same rules, so the set loom's
//! threads block and the set `Signals` accepts can never drift apart.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use libc::c_int;

/// Signals `loom::signal` refuses and loom's threads never block (every
/// other one they do, on Linux):
/// SIGKILL and SIGSTOP cannot be caught at all; SIGSEGV, SIGBUS, SIGILL,
/// SIGFPE, SIGTRAP and SIGSYS are synchronous, raised by the faulting
/// thread itself (a blocked one kills the process, and loom's stack
/// overflow report needs SIGSEGV/SIGBUS delivered); SIGABRT is how
/// `abort(3)` and a failed assertion end the process; SIGPROF drives
/// sampling profilers, which would never see a loom thread that blocked it.
const REFUSED: [(c_int, &str); 10] = [
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGSYS, "SIGSYS"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGPROF, "SIGPROF"),
];

/// The highest signal number of the platform (the sets below are `u64`
/// bitmaps, which this fits on every supported system).
#[cfg(target_os = "linux")]
fn max_signal() -> c_int {
    libc::SIGRTMAX()
}

/// The highest signal number of the platform: macOS and the BSDs have 31
/// standard signals (`NSIG` is 32).
#[cfg(not(target_os = "linux"))]
fn max_signal() -> c_int {
    31
}

/// Whether `signal` is one libc keeps for itself: glibc and musl use the
/// real-time signals below `SIGRTMIN()` for thread cancellation and
/// `setxid`, and their `pthread_sigmask` refuses to block them anyway.
#[cfg(target_os = "linux")]
fn reserved_by_libc(signal: c_int) -> bool {
    (32..libc::SIGRTMIN()).contains(&signal)
}

#[cfg(not(target_os = "linux"))]
fn reserved_by_libc(_signal: c_int) -> bool {
    false
}

/// Why `signal` cannot be taken over, if it cannot.
fn refusal(signal: c_int) -> Option<String> {
    if let Some((_, name)) = REFUSED.iter().find(|(number, _)| *number == signal) {
        return Some(format!(
            "loom::signal: {name} ({signal}) cannot be received as an event: it cannot be caught, \
             is raised synchronously by a fault, or must keep its own action"
        ));
    }
    if !(1..=max_signal()).contains(&signal) {
        return Some(format!(
            "loom::signal: {signal} is not a signal number (1..={})",
            max_signal()
        ));
    }
    if reserved_by_libc(signal) {
        return Some(format!(
            "loom::signal: signal {signal} is reserved by the C library (use SIGRTMIN() and above)"
        ));
    }
    None
}

/// A set of signal numbers, as a bitmap (bit `n - 1` is signal `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SignalSet(u64);

impl SignalSet {
    /// The set of `signals`, each checked: a refused or unknown number is
    /// `InvalidInput`, naming it.
    pub(crate) fn of(signals: &[c_int]) -> io::Result<SignalSet> {
        let mut set = SignalSet(0);
        for &signal in signals {
            if let Some(message) = refusal(signal) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
            }
            set.0 |= 1 << (signal - 1);
        }
        Ok(set)
    }

    /// Every signal `loom::signal` accepts: what loom's own threads block
    /// on Linux.
    #[cfg(any(target_os = "linux", test))]
    pub(crate) fn catchable() -> SignalSet {
        let mut set = SignalSet(0);
        for signal in 1..=max_signal() {
            if refusal(signal).is_none() {
                set.0 |= 1 << (signal - 1);
            }
        }
        set
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    pub(crate) fn from_bits(bits: u64) -> SignalSet {
        SignalSet(bits)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The signal numbers in the set, lowest first.
    pub(crate) fn iter(self) -> impl Iterator<Item = c_int> {
        (1..=64).filter(move |signal| self.0 & (1 << (signal - 1)) != 0)
    }

    /// The set as the C library's `sigset_t`.
    pub(crate) fn to_sigset(self) -> libc::sigset_t {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set it is given, and
        // `set` is valid for writes.
        let mut set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            set.assume_init()
        };
        for signal in self.iter() {
            // SAFETY: `set` is an initialised sigset_t and `signal` a
            // valid signal number (checked when it entered the set).
            unsafe { libc::sigaddset(&mut set, signal) };
        }
        set
    }

    /// Adds the set to the calling thread's blocked signals. Threads
    /// started later by this one inherit the mask.
    pub(crate) fn block_in_this_thread(self) -> io::Result<()> {
        let set = self.to_sigset();
        // SAFETY: `set` is an initialised sigset_t; a null old set is
        // allowed.
        let error = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        match error {
            0 => Ok(()),
            error => Err(io::Error::from_raw_os_error(error)),
        }
    }
}

/// Blocks in the calling thread every signal `loom::signal` could take
/// over. Called first thing by the threads loom starts (the loops other
/// than loop 0, the blocking pool's workers), so they never take a signal
/// meant for a `Signals` — a process-directed signal goes to some thread
/// that does not block it, and its default action usually ends the
/// process. The short moment before the call is covered by inheritance:
/// a new thread starts with its creator's mask, and loom's threads are
/// created by loom threads or by the thread that called `Runtime::run`.
#[cfg(target_os = "linux")]
pub(crate) fn block_loom_thread_signals() {
    if let Err(e) = SignalSet::catchable().block_in_this_thread() {
        // pthread_sigmask fails only for a bad `how`; never expected.
        log::warn!("loom: cannot block signals in a loom thread: {e}");
    }
}

/// Runs `f` with every signal `loom::signal` could take over blocked in
/// the calling thread, then restores its mask: threads `f` starts (Tracy's
/// own, when loom starts the profiler; the stall monitor) inherit the blocked mask and so,
/// like loom's threads, never take a signal meant for a `Signals`.
#[cfg(target_os = "linux")]
pub(crate) fn with_loom_thread_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    with_mask_changed(libc::SIG_BLOCK, SignalSet::catchable(), f)
}

/// Nothing to block on kqueue platforms (see `block_loom_thread_signals`).
#[cfg(not(target_os = "linux"))]
pub(crate) fn with_loom_thread_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Nothing to do on kqueue platforms: `EVFILT_SIGNAL` sees a signal
/// whichever thread it is delivered to, and a blocked mask would only be
/// inherited by the processes these threads start.
#[cfg(not(target_os = "linux"))]
pub(crate) fn block_loom_thread_signals() {}

/// Signals loom set to `SIG_IGN` (on kqueue platforms, where that is how
/// `EVFILT_SIGNAL` keeps a default action from ending the process), which a
/// child process must not inherit through `exec`.
static IGNORED_BY_LOOM: AtomicU64 = AtomicU64::new(0);

/// Records that loom set `signal` to `SIG_IGN`.
#[cfg_attr(
    target_os = "linux",
    expect(
        dead_code,
        reason = "kqueue platforms ignore signals; Linux blocks them"
    )
)]
pub(crate) fn note_ignored(signal: c_int) {
    IGNORED_BY_LOOM.fetch_or(1 << (signal - 1), Ordering::Relaxed);
}

/// Whether loom has set any signal to `SIG_IGN` (kqueue platforms).
pub(crate) fn loom_ignored_any() -> bool {
    IGNORED_BY_LOOM.load(Ordering::Relaxed) != 0
}

/// Runs `f` with the calling thread's mask set to exactly `blocked`, then
/// restores it. A blocking-pool worker spawns a child this way: the child
/// inherits the mask (`posix_spawn` gives it the spawning thread's), and
/// only the signals a `Signals` has taken need to stay blocked meanwhile.
pub(crate) fn with_thread_mask<R>(blocked: SignalSet, f: impl FnOnce() -> R) -> R {
    with_mask_changed(libc::SIG_SETMASK, blocked, f)
}

/// Runs `f` with the calling thread's mask changed by
/// `pthread_sigmask(how, set)`, then puts the old mask back.
fn with_mask_changed<R>(how: c_int, set: SignalSet, f: impl FnOnce() -> R) -> R {
    let set = set.to_sigset();
    let mut old = SignalSet(0).to_sigset();
    // SAFETY: both are initialised sigset_ts; `old` receives the mask.
    let error = unsafe { libc::pthread_sigmask(how, &set, &mut old) };
    let result = f();
    if error == 0 {
        // SAFETY: `old` is the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    }
    result
}

/// Puts a child process back into the signal state it would have had
/// without loom — every signal unblocked, and the default action for each
/// one loom ignored — since a blocked mask and `SIG_IGN` survive `exec`
/// (loom's threads block every catchable signal, and the thread that made
/// a `Signals` blocks its set). std's `Command` resets neither.
///
/// Runs in the child between `fork` and `exec`, so it makes only
/// async-signal-safe calls and allocates nothing.
pub(crate) fn reset_for_exec() -> io::Result<()> {
    let empty = SignalSet(0).to_sigset();
    // SAFETY: `empty` is an initialised sigset_t; a null old set is
    // allowed.
    let error = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    for signal in SignalSet(IGNORED_BY_LOOM.load(Ordering::Relaxed)).iter() {
        // SAFETY: a valid signal number (it was set to SIG_IGN before);
        // signal(2) is async-signal-safe.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_unknown_signals_are_invalid_input() {
        for signal in [
            0,
            -1,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            1000,
        ] {
            let error = SignalSet::of(&[signal]).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{signal}");
        }
    }

    #[test]
    fn the_catchable_set_is_what_the_checks_accept() {
        let all = SignalSet::catchable();
        for signal in 1..=max_signal() {
            let accepted = SignalSet::of(&[signal]).is_ok();
            assert_eq!(all.iter().any(|s| s == signal), accepted, "{signal}");
        }
        assert!(all.iter().any(|s| s == libc::SIGTERM));
        assert!(!all.iter().any(|s| s == libc::SIGSEGV));
    }
}
