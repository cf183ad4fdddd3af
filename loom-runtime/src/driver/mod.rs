//! The completion contract between fibers and the kernel, and its backends.
//!
//! A fiber that blocks on I/O builds an [`op`](crate::op) on its own stack
//! and hands it to the loop's [`Driver`]; the driver tells the fiber when
//! the operation has finished, whichever way the kernel works:
//!
//! - `uring` (Linux): the op becomes an SQE whose `user_data` is the address
//!   of a [`Completion`] on the fiber's stack; the CQE's result is stored
//!   there and the fiber woken.
//! - `poll` (mio: epoll on Linux, kqueue on macOS/BSD): the fiber tries the
//!   system call itself; on `EAGAIN` it parks on the socket's waiter list
//!   until the socket becomes ready, then tries again.
//!
//! The backend is chosen once, when the runtime is built, and dispatched
//! with a `match` on [`Driver`] — no dynamic dispatch on the data path.

mod atomic;
pub(crate) mod mailbox;
pub(crate) mod poll;
pub(crate) mod remote;
#[cfg(target_os = "linux")]
pub(crate) mod uring;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::op::{Deadline, Op};
use crate::sched::Scheduler;
use crate::sys::set_nonblocking;
use crate::wheel::TimerEntry;
use poll::SourceKey;
use remote::Remote;

/// Which kernel interface a runtime's event loop uses for I/O.
///
/// # Examples
///
/// ```
/// use loom::rt::Backend;
///
/// let rt = loom::Runtime::builder().backend(Backend::Auto).build()?;
/// let chosen = rt.run(loom::rt::backend);
/// assert_ne!(chosen, Backend::Auto); // always a concrete backend inside
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring where the kernel allows it and supports every operation
    /// loom uses; otherwise epoll (Linux) or kqueue (macOS/BSD). The reason
    /// for a fallback is logged once, at `info` level. The environment
    /// variable `LOOM_BACKEND=io_uring|epoll|kqueue` overrides `Auto`.
    Auto,
    /// io_uring (Linux ≥ 5.11). Building fails if it is unavailable.
    IoUring,
    /// epoll, through mio (Linux).
    Epoll,
    /// kqueue, through mio (macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly).
    Kqueue,
}

impl Backend {
    /// The name used by `LOOM_BACKEND` and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
            Backend::Kqueue => "kqueue",
        }
    }

    /// Parses a `LOOM_BACKEND` value.
    ///
    /// # Errors
    /// `InvalidInput` naming the accepted values.
    pub fn from_name(name: &str) -> io::Result<Backend> {
        match name.trim() {
            "auto" => Ok(Backend::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(Backend::IoUring),
            "epoll" => Ok(Backend::Epoll),
            "kqueue" => Ok(Backend::Kqueue),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown loom backend {other:?}; expected auto, io_uring, epoll or kqueue"),
            )),
        }
    }

    /// The concrete backends this host can run, best first (what
    /// `Backend::Auto` would try, in order).
    pub fn available() -> Vec<Backend> {
        #[cfg(target_os = "linux")]
        let uring = uring::Uring::probe().is_ok().then_some(Backend::IoUring);
        #[cfg(not(target_os = "linux"))]
        let uring = None;
        uring.into_iter().chain([poll::NATIVE]).collect()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long [`Driver::turn`] may wait in the kernel for an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: submit, and collect what is already done.
    No,
    /// For at most this long (the next timer is due then).
    Until(Duration),
    /// Until something happens.
    Forever,
}

impl Wait {
    /// `Until(timeout)`, or `Forever` without one.
    pub(crate) fn at_most(timeout: Option<Duration>) -> Wait {
        timeout.map_or(Wait::Forever, Wait::Until)
    }
}

/// Sizes of the driver's kernel-shared structures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DriverConfig {
    /// io_uring submission-queue entries (the completion queue gets 4×).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code, reason = "io_uring only"))]
    pub(crate) ring_entries: u32,
    /// Readiness events taken from the kernel per wait on poll backends.
    pub(crate) events: usize,
}

/// The loop services an op run uses.
pub(crate) trait Host {
    /// The loop's scheduler; its current fiber is the one running the op.
    fn sched(&self) -> &Scheduler;

    /// Arms `timer` to wake its fiber at `at`; `false` (nothing armed) if
    /// `at` has passed. `timer` stays in the caller's frame until it fired
    /// or was disarmed.
    fn arm_timer(&self, timer: &TimerEntry, at: Instant) -> bool;

    /// Takes an armed timer off the wheel (a no-op once it fired).
    fn disarm_timer(&self, timer: &TimerEntry);

    /// Runs `job` on the blocking pool while the calling fiber waits; the
    /// job may borrow from the caller's frame, which outlives it.
    fn run_blocking<F>(&self, job: F) -> io::Result<thread::Result<io::Result<u32>>>
    where
        F: FnOnce() -> io::Result<u32> + Send;
}

/// The loop's I/O backend. See the module documentation.
#[cfg_attr(
    target_os = "linux",
    expect(
        clippy::large_enum_variant,
        reason = "one driver per loop, built once and never moved while running"
    )
)]
pub(crate) enum Driver {
    #[cfg(target_os = "linux")]
    Uring(uring::Uring),
    Poll(poll::Poll),
}

impl Driver {
    /// Opens the backend `requested` asks for (after `LOOM_BACKEND`), with
    /// `Auto`'s fallback.
    pub(crate) fn open(requested: Backend, config: DriverConfig) -> io::Result<Driver> {
        let from_env = match std::env::var("LOOM_BACKEND") {
            Ok(name) if requested == Backend::Auto && !name.is_empty() => Some(
                Backend::from_name(&name)
                    .map_err(|e| io::Error::new(e.kind(), format!("LOOM_BACKEND={name:?}: {e}")))?,
            ),
            _ => None,
        };
        let requested = from_env.unwrap_or(requested);
        match requested {
            Backend::Auto => Ok(Self::open_auto(config)),
            Backend::IoUring => Self::open_uring(config).map_err(|e| match from_env {
                Some(_) => io::Error::new(
                    e.kind(),
                    format!(
                        "LOOM_BACKEND=io_uring, but io_uring cannot be used here: {e}; unset \
                         LOOM_BACKEND (or set it to auto) to fall back to {}",
                        poll::NATIVE
                    ),
                ),
                None => e,
            }),
            Backend::Epoll | Backend::Kqueue if requested != poll::NATIVE => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {requested} backend does not exist on this platform"),
            )),
            Backend::Epoll | Backend::Kqueue => Ok(Driver::Poll(poll::Poll::new(config)?)),
        }
    }

    #[cfg(target_os = "linux")]
    fn open_uring(config: DriverConfig) -> io::Result<Driver> {
        uring::Uring::new(config).map(Driver::Uring)
    }

    #[cfg(not(target_os = "linux"))]
    fn open_uring(_config: DriverConfig) -> io::Result<Driver> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring exists on Linux only",
        ))
    }

    fn open_auto(config: DriverConfig) -> Driver {
        // Once per process: every loop of every runtime would say the same.
        static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);
        match Self::open_uring(config) {
            Ok(driver) => return driver,
            Err(e) if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) => log::info!(
                "loom: io_uring unavailable ({e}); using {} instead",
                poll::NATIVE
            ),
            Err(e) => log::debug!("loom: io_uring unavailable ({e})"),
        }
        match poll::Poll::new(config) {
            Ok(poll) => Driver::Poll(poll),
            // Without any way to wait for the kernel the runtime cannot run;
            // a poll instance fails only when fds or memory are exhausted.
            Err(e) => panic!("loom: cannot create a {} instance: {e}", poll::NATIVE),
        }
    }

    /// The backend in use.
    pub(crate) fn backend(&self) -> Backend {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(_) => Backend::IoUring,
            Driver::Poll(_) => poll::NATIVE,
        }
    }

    /// Whether ops complete in the kernel (io_uring) rather than being
    /// retried on readiness: files and metadata then need no thread, and a
    /// blocking socket call makes the kernel itself wait.
    pub(crate) fn is_completion_based(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(_) => true,
            Driver::Poll(_) => false,
        }
    }

    /// Whether an op whose io_uring opcode is `code` waits inside the kernel
    /// here: on io_uring when this kernel has the opcode. Otherwise — on the
    /// poll backends, or an opcode newer than the running kernel — `run`
    /// makes the op's non-blocking `attempt` instead, on readiness or on the
    /// blocking pool, so a caller whose op only works as a kernel-side wait
    /// (`waitid` on a pidfd) picks another way to wait.
    #[cfg(target_os = "linux")]
    pub(crate) fn has_op(&self, code: u8) -> bool {
        match self {
            Driver::Uring(uring) => uring.has_op(code),
            Driver::Poll(_) => false,
        }
    }

    /// Prepares a pollable fd (a socket, a pipe) for this backend: blocking
    /// and unregistered on io_uring (the kernel waits inside the op);
    /// non-blocking and registered on the poll backends, whose key the fd's
    /// owner keeps.
    pub(crate) fn adopt_fd(&self, fd: std::os::fd::RawFd) -> io::Result<Option<SourceKey>> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(_) => set_nonblocking(fd, false).map(|()| None),
            Driver::Poll(poll) => {
                set_nonblocking(fd, true)?;
                poll.register(fd).map(Some)
            }
        }
    }

    /// Registers an fd that stays non-blocking on every backend (a
    /// signalfd, a pidfd: waited for with `op::WaitReadable`, then read
    /// with a system call of their own) with the poll backends.
    pub(crate) fn register_fd(&self, fd: std::os::fd::RawFd) -> io::Result<Option<SourceKey>> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(_) => Ok(None),
            Driver::Poll(poll) => poll.register(fd).map(Some),
        }
    }

    /// Undoes [`Driver::adopt_fd`]'s or [`Driver::register_fd`]'s
    /// registration, before the fd is closed or handed back.
    pub(crate) fn release_fd(&self, source: SourceKey, fd: std::os::fd::RawFd) {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(_) => {}
            Driver::Poll(poll) => poll.deregister(source, fd),
        }
    }

    /// The handle other threads use to hand results back and wake the loop.
    pub(crate) fn remote(&self) -> &std::sync::Arc<Remote> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(uring) => uring.remote(),
            Driver::Poll(poll) => poll.remote(),
        }
    }

    /// Called once on the loop's thread, with the driver at its final
    /// address, before any fiber runs.
    pub(crate) fn start(&self) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(uring) => uring.start(),
            Driver::Poll(_) => Ok(()),
        }
    }

    /// Runs `op` to completion on the host's current fiber and returns the
    /// kernel's result; `source` is the socket's poll registration
    /// (ignored on io_uring). The caller has checked that the fiber is not
    /// cancelled. An op whose `deadline` has already passed is still tried
    /// once, so data already there is returned (std's timeouts bound only
    /// waiting).
    #[inline]
    pub(crate) fn run<O: Op, H: Host>(
        &self,
        host: &H,
        op: &mut O,
        source: Option<SourceKey>,
        deadline: Option<Deadline>,
    ) -> io::Result<u32> {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(uring) => uring.run(host, op, deadline),
            Driver::Poll(poll) => poll.run(host, op, source, deadline),
        }
    }

    /// Whether a non-blocking [`Driver::turn`] could make progress: work
    /// queued for the kernel or operations in flight.
    pub(crate) fn has_pending(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(uring) => uring.has_pending(),
            Driver::Poll(poll) => poll.has_parked(),
        }
    }

    /// Submits queued work, then collects what the kernel finished and
    /// wakes the fibers waiting for it. Unless `wait` is [`Wait::No`], waits
    /// for at least one event (for at most the given time with
    /// [`Wait::Until`]) — unless messages already wait in the mailbox,
    /// which the caller drains.
    pub(crate) fn turn(&self, wait: Wait, sched: &Scheduler) {
        let remote = self.remote();
        let wait = match wait {
            Wait::No => Wait::No,
            wait if remote.prepare_to_sleep() => wait,
            _ => Wait::No,
        };
        match self {
            #[cfg(target_os = "linux")]
            Driver::Uring(uring) => uring.turn(wait, sched),
            Driver::Poll(poll) => poll.turn(wait, sched),
        }
        remote.woke_up();
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Driver").field(&self.backend()).finish()
    }
}

/// Runs an op's system call (`Op::attempt`) on the blocking pool while the
/// fiber waits: on the poll backends for `Blocking` ops (files, which
/// readiness cannot tell about), on io_uring for ops this kernel lacks.
fn run_on_pool<O: Op, H: Host>(host: &H, op: &mut O) -> io::Result<u32> {
    struct SendOp<O>(*mut O);
    // SAFETY: the ops that reach the pool — `Blocking` ones, and on
    // io_uring the ones newer than the required set (files, processes) —
    // hold only plain data (fds, pointers to buffers the fiber keeps
    // alive), so one pool thread may run the attempt while the fiber is
    // suspended and does not touch the op.
    unsafe impl<O> std::marker::Send for SendOp<O> {}
    let op = SendOp(std::ptr::from_mut(op));
    let job = move || {
        let op = op;
        // SAFETY: the fiber waits in `run_on_pool` until this job is
        // done (or never started), so the op is live and used only here.
        unsafe { (*op.0).attempt() }
    };
    match host.run_blocking(job)? {
        Ok(result) => result,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
