//! Unix signals as events a fiber waits for, shaped like signal-hook's
//! iterator API: [`Signals::new`] takes a set of signals,
//! [`Signals::recv`] parks only the calling fiber until one arrives and
//! returns its number, [`Signals::forever`] iterates over them, and
//! [`ctrl_c`] waits for SIGINT. No signal handler runs user code; the
//! signals are read as data, on the receiving fiber's loop.
//!
//! ```
//! use loom::signal::{SIGTERM, SIGUSR1, Signals};
//!
//! loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
//!     let signals = Signals::new(&[SIGUSR1, SIGTERM])?;
//!     // Stands in for `kill -USR1 <pid>` from elsewhere.
//!     // SAFETY: raise(3) has no memory-safety preconditions.
//!     unsafe { libc::raise(SIGUSR1) };
//!     assert_eq!(signals.recv()?, SIGUSR1);
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A server's shutdown, in a fiber of its own:
//!
//! ```no_run
//! # fn stop_accepting() {}
//! loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
//!     let signals = loom::signal::Signals::new(&[loom::signal::SIGINT, loom::signal::SIGTERM])?;
//!     let signal = signals.recv()?;
//!     println!("signal {signal}: shutting down");
//!     stop_accepting();
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The signal-mask rule (Linux)
//!
//! On Linux a [`Signals`] reads its signals from a signalfd, and the
//! kernel puts a signal there only while **every thread of the process
//! blocks it**. A thread that does not block it gets it delivered instead,
//! with the signal's action — for SIGTERM, SIGINT, SIGHUP, SIGUSR1 and
//! most others the default action ends the process. So:
//!
//! - Threads loom starts block every signal a `Signals` can take, first
//!   thing: the loop threads of a runtime with several loops (all but
//!   loop 0) and the blocking pool's workers (behind [`crate::unblock`]).
//!   Loop 0 runs on the thread that called `Runtime::run` and keeps its
//!   mask, so a program without a `Signals` still ends on Ctrl-C.
//! - [`Signals::new`] blocks its signals in the calling thread and, when
//!   called on another loop, in loop 0's thread — the thread that called
//!   `Runtime::run`, the only thread of a runtime that keeps the mask it
//!   had.
//! - Threads **you** started before creating the `Signals` (with
//!   `std::thread::spawn`, or a library's thread pool) are yours to
//!   mask: call [`block`] with the signals early in `main`, before
//!   starting any thread — threads inherit their creator's mask, so every
//!   thread started afterwards blocks them too. Threads started from a
//!   fiber on a loop other than loop 0 inherit that loop's full mask.
//!
//! Blocking survives the `Signals`: when it is dropped the signals stay
//! blocked in those threads, so one that arrives later stays pending and
//! is received by the next `Signals` for it, rather than running its
//! default action at an unexpected moment. A signal sent while no fiber
//! is in [`recv`](Signals::recv) is likewise kept until the next call.
//!
//! A signal sent to the whole process (`kill`, Ctrl-C in a terminal, a
//! service manager stopping the program) reaches any `Signals` for it. One
//! sent to a single thread (`raise`, `pthread_kill`) reaches only a
//! `Signals` on that thread's loop.
//!
//! A child process starts with the mask of the thread that forked it, and
//! keeps it across `exec`. [`crate::process::Command`] gives its children
//! an empty mask back (and the default action of any signal loom set to
//! `SIG_IGN`); `std::process::Command` does not, so a child it starts from
//! a loom thread, or from a thread that blocks signals for a `Signals`,
//! starts with them blocked, and a SIGTERM sent to it stays pending. Clear
//! the mask in such a child where that matters (`CommandExt::pre_exec`
//! with `pthread_sigmask(SIG_SETMASK, <empty>)`), or spawn it with
//! `loom::process`.
//!
//! # One receiver per signal
//!
//! The kernel hands a pending signal to one reader, so a signal has at
//! most one receiver in the process: `Signals::new` for a signal a live
//! `Signals` already has (on any loop, in any runtime) fails with
//! [`io::ErrorKind::AlreadyExists`]. Dropping the `Signals` frees its
//! signals for a new one. Fibers that all want to hear of a signal should
//! share one receiving fiber that tells them, with a channel or a
//! `loom::sync` primitive.
//!
//! Standard signals do not queue: one sent several times before it is
//! received may be received once.
//!
//! # Signals that cannot be received
//!
//! `Signals::new` and [`block`] refuse, with
//! [`io::ErrorKind::InvalidInput`]: SIGKILL and SIGSTOP (they cannot be
//! caught); SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP and SIGSYS (a fault
//! raises them in the faulting thread, which cannot go on; loom's
//! fiber-stack overflow report relies on SIGSEGV and SIGBUS); SIGABRT
//! (`abort` must end the process); SIGPROF (sampling profilers rely on it
//! reaching the threads that run); numbers that are no signal, and the
//! real-time signals below `SIGRTMIN()` that the C library keeps for
//! itself. On Linux loom's threads block every other signal.
//!
//! # macOS and the BSDs
//!
//! There a `Signals` is a kqueue of its own with an `EVFILT_SIGNAL`
//! filter per signal. kqueue reports a signal after the kernel tried to
//! deliver it, and the signal's action still runs, so `Signals::new` sets
//! each signal whose default action would end or stop the process to
//! `SIG_IGN` (a handler already installed is kept) and leaves it so after
//! the `Signals` is dropped; a signal sent while no `Signals` exists is
//! then lost. Thread masks play no part there, and loom's threads leave
//! theirs alone; child processes inherit `SIG_IGN` across `exec`, as they
//! inherit a mask on Linux (`loom::process` resets both).

use std::io;

use libc::c_int;

#[cfg(not(target_os = "linux"))]
mod kqueue;
mod registry;
#[cfg(target_os = "linux")]
mod signalfd;

#[cfg(not(target_os = "linux"))]
use self::kqueue::Receiver;
use self::registry::Claim;
pub(crate) use self::registry::taken;
#[cfg(target_os = "linux")]
use self::signalfd::Receiver;
use crate::rt::current::with_current;
use crate::sys::signal::SignalSet;

/// Hangup: the controlling terminal closed; daemons take it as "reload".
pub const SIGHUP: c_int = libc::SIGHUP;
/// Interrupt: Ctrl-C in a terminal.
pub const SIGINT: c_int = libc::SIGINT;
/// Quit: `Ctrl-\` in a terminal.
pub const SIGQUIT: c_int = libc::SIGQUIT;
/// Termination: what `kill` and service managers send to stop a process.
pub const SIGTERM: c_int = libc::SIGTERM;
/// User-defined signal 1.
pub const SIGUSR1: c_int = libc::SIGUSR1;
/// User-defined signal 2.
pub const SIGUSR2: c_int = libc::SIGUSR2;
/// A timer set with `alarm(2)` expired.
pub const SIGALRM: c_int = libc::SIGALRM;
/// A child process stopped or ended.
pub const SIGCHLD: c_int = libc::SIGCHLD;
/// A write to a pipe with no reader (loom's sockets never raise it).
pub const SIGPIPE: c_int = libc::SIGPIPE;
/// The terminal window changed size.
pub const SIGWINCH: c_int = libc::SIGWINCH;
/// Continue after a stop.
pub const SIGCONT: c_int = libc::SIGCONT;
/// Stop from the terminal: Ctrl-Z.
pub const SIGTSTP: c_int = libc::SIGTSTP;

/// A set of signals received as events by fibers; see the
/// [module documentation](self) for the rules.
///
/// A `Signals` belongs to the loop it was created on (it is not `Send`):
/// fibers of that loop may wait on it, one signal going to one of them.
#[derive(Debug)]
pub struct Signals {
    // Closed before the claim is given back, so a new receiver never sees
    // the old one still open.
    receiver: Receiver,
    claim: Claim,
}

impl Signals {
    /// Starts receiving `signals` (numbers such as [`SIGTERM`], or
    /// `libc::SIGRTMIN() + 1`), blocking them as the
    /// [mask rule](self#the-signal-mask-rule-linux) requires. Signals
    /// already pending for them are received by the first calls.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an empty list or a signal that cannot be
    /// received (see the [module documentation](self)); `AlreadyExists`
    /// if another live `Signals` has one of them; the system's error if
    /// the signalfd or kqueue cannot be made (`EMFILE`, ...); the
    /// cancellation error if the fiber is cancelled while loop 0 blocks
    /// the signals.
    ///
    /// # Panics
    ///
    /// Outside a fiber of a loom runtime.
    #[track_caller]
    pub fn new(signals: &[c_int]) -> io::Result<Signals> {
        let loop_index = with_current("loom::signal::Signals::new", |lp| lp.index);
        let set = SignalSet::of(signals)?;
        if set.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "loom::signal::Signals::new: no signal given",
            ));
        }
        let claim = Claim::take(set)?;
        let receiver = Receiver::open(set, loop_index)?;
        Ok(Signals { receiver, claim })
    }

    /// Parks the calling fiber until one of the signals arrives, and
    /// returns its number.
    ///
    /// # Errors
    ///
    /// The cancellation error ([`crate::fiber::is_cancelled`]) if the
    /// fiber is, or gets, cancelled; a signal that arrives meanwhile stays
    /// pending for the next call.
    ///
    /// # Panics
    ///
    /// Outside a fiber of the loop that created the `Signals`.
    pub fn recv(&self) -> io::Result<c_int> {
        loop {
            // Waiting first makes every call a cancellation point, even
            // when a signal is already pending.
            self.receiver.wait()?;
            if let Some(signal) = self.receiver.take()? {
                return Ok(signal);
            }
        }
    }

    /// One pending signal, if any, without waiting; `Ok(None)` if none
    /// is pending. Not a cancellation point.
    ///
    /// # Errors
    ///
    /// The system's error reading the signalfd or kqueue (not expected).
    pub fn try_recv(&self) -> io::Result<Option<c_int>> {
        self.receiver.take()
    }

    /// The signals' numbers as they arrive, each from
    /// [`recv`](Self::recv). The iterator ends if `recv` fails, which is
    /// when the fiber has been cancelled.
    pub fn forever(&self) -> Forever<'_> {
        Forever { signals: self }
    }

    /// The signal numbers this `Signals` receives, lowest first.
    pub fn signals(&self) -> impl Iterator<Item = c_int> + use<> {
        self.claim.set().iter()
    }
}

/// The iterator of [`Signals::forever`].
#[derive(Debug)]
pub struct Forever<'a> {
    signals: &'a Signals,
}

impl Iterator for Forever<'_> {
    type Item = c_int;

    fn next(&mut self) -> Option<c_int> {
        self.signals.recv().ok()
    }
}

/// Parks the calling fiber until SIGINT (Ctrl-C) arrives, with a
/// [`Signals`] for SIGINT alone that is dropped on return.
///
/// # Errors
///
/// As [`Signals::new`] (`AlreadyExists` while another `Signals` has
/// SIGINT) and [`Signals::recv`].
///
/// # Panics
///
/// Outside a fiber of a loom runtime.
///
/// # Examples
///
/// ```no_run
/// #[loom::main]
/// fn main() -> std::io::Result<()> {
///     loom::signal::ctrl_c()?;
///     println!("interrupted");
///     Ok(())
/// }
/// ```
#[track_caller]
pub fn ctrl_c() -> io::Result<()> {
    Signals::new(&[SIGINT])?.recv().map(drop)
}

/// Blocks `signals` in the calling thread, and so in every thread it
/// starts afterwards. Call it early in `main`, before starting threads of
/// your own, so none of them takes a signal meant for a [`Signals`] (see
/// the [mask rule](self#the-signal-mask-rule-linux)). Works in any
/// thread, inside a runtime or not.
///
/// # Errors
///
/// `InvalidInput` for a signal that cannot be received.
///
/// # Examples
///
/// ```
/// use loom::signal::{SIGINT, SIGTERM};
///
/// loom::signal::block(&[SIGINT, SIGTERM])?;
/// let worker = std::thread::spawn(|| { /* never takes SIGINT or SIGTERM */ });
/// worker.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn block(signals: &[c_int]) -> io::Result<()> {
    SignalSet::of(signals)?.block_in_this_thread()
}
