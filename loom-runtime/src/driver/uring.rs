//! The io_uring backend.
//!
//! Ops push SQEs into the submission queue — shared memory, no system call —
//! and suspend. When no fiber is runnable the loop makes one `io_uring_enter`
//! that submits everything queued and waits for completions (with the timer
//! wheel's next deadline as its timeout); a busy loop instead submits and
//! reaps without waiting once per run batch. Each CQE's `user_data` is the
//! address of the [`Completion`] on the waiting fiber's stack, or one of the
//! two tags below.
//!
//! Limits: the submission queue has `ring_entries` slots. A full queue is
//! submitted and the push retried, never dropped. The completion queue has
//! four times as many; should it overflow anyway, the kernel keeps the extra
//! completions (`IORING_FEAT_NODROP`) and the next turn flushes them.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, SubmitArgs, Timespec};
use io_uring::{EnterFlags, IoUring, Probe, opcode, squeue, types};

use super::remote::{Remote, Signal};
use super::{Completion, DriverConfig, Wait};
use crate::sched::Scheduler;
use crate::sys::syscall;

/// `user_data` of SQEs whose completion nobody waits for: cancellations and
/// fire-and-forget closes. Completion addresses are never 0.
pub(crate) const IGNORED: u64 = 0;
/// The longest kernel wait while the remote-wake read could not be queued.
const UNARMED_WAIT: Duration = Duration::from_millis(1);

/// `user_data` of the pending read on the remote-wake eventfd.
const WAKE: u64 = 1;

/// Every opcode some loom operation submits; `Auto` falls back to the
/// poll backend unless the kernel supports all of them.
const REQUIRED_OPCODES: &[(u8, &str)] = &[
    (opcode::Accept::CODE, "accept"),
    (opcode::Connect::CODE, "connect"),
    (opcode::Recv::CODE, "recv"),
    (opcode::Send::CODE, "send"),
    (opcode::Read::CODE, "read"),
    (opcode::Write::CODE, "write"),
    (opcode::Readv::CODE, "readv"),
    (opcode::Writev::CODE, "writev"),
    (opcode::RecvMsg::CODE, "recvmsg"),
    (opcode::SendMsg::CODE, "sendmsg"),
    (opcode::Shutdown::CODE, "shutdown"),
    (opcode::Close::CODE, "close"),
    (opcode::OpenAt::CODE, "openat"),
    (opcode::Fsync::CODE, "fsync"),
    (opcode::Statx::CODE, "statx"),
    (opcode::AsyncCancel::CODE, "async_cancel"),
];

/// Setup flags tried in order: each later set drops the flag the kernel
/// may have refused (`EINVAL`) in the one before — `DEFER_TASKRUN` (Linux
/// 6.1), then `SINGLE_ISSUER` (6.0), then `COOP_TASKRUN` (5.19).
/// `R_DISABLED` (5.10) lets the loop's thread, not the building thread,
/// become the single issuer.
const SETUP_ATTEMPTS: &[SetupFlags] = &[
    SetupFlags::new(true, true, true),
    SetupFlags::new(true, false, true),
    SetupFlags::new(false, false, true),
    SetupFlags::new(false, false, false),
];

/// One set of optional setup flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SetupFlags {
    /// `SINGLE_ISSUER` together with `R_DISABLED`.
    single_issuer: bool,
    defer_taskrun: bool,
    coop_taskrun: bool,
}

impl SetupFlags {
    const fn new(single_issuer: bool, defer_taskrun: bool, coop_taskrun: bool) -> SetupFlags {
        SetupFlags {
            single_issuer,
            defer_taskrun,
            coop_taskrun,
        }
    }

    fn describe(self) -> &'static str {
        match (self.single_issuer, self.defer_taskrun, self.coop_taskrun) {
            (true, true, true) => "SINGLE_ISSUER|R_DISABLED|DEFER_TASKRUN|COOP_TASKRUN",
            (true, false, true) => "SINGLE_ISSUER|R_DISABLED|COOP_TASKRUN",
            (true, true, false) => "SINGLE_ISSUER|R_DISABLED|DEFER_TASKRUN",
            (true, false, false) => "SINGLE_ISSUER|R_DISABLED",
            (false, true, true) => "DEFER_TASKRUN|COOP_TASKRUN",
            (false, true, false) => "DEFER_TASKRUN",
            (false, false, true) => "COOP_TASKRUN",
            (false, false, false) => "no flags",
        }
    }
}

/// See the module documentation.
pub(crate) struct Uring {
    ring: RefCell<IoUring>,
    /// SQEs pushed whose CQE has not been reaped yet (not counting the
    /// eventfd read).
    in_flight: Cell<usize>,
    remote: Arc<Remote>,
    /// Target of the pending eventfd read; boxed so it never moves, and
    /// leaked if the ring cannot confirm the read is gone.
    wake_buf: Box<UnsafeCell<u64>>,
    wake_armed: Cell<bool>,
    disabled: Cell<bool>,
    setup: &'static str,
}

impl Uring {
    pub(crate) fn new(config: DriverConfig) -> io::Result<Uring> {
        let (ring, setup) = Self::setup(config.ring_entries)?;
        Self::check(&ring)?;
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
        // SAFETY: eventfd just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let disabled = setup.contains("R_DISABLED");
        Ok(Uring {
            ring: RefCell::new(ring),
            in_flight: Cell::new(0),
            remote: Arc::new(Remote::new(Signal::EventFd(fd))),
            wake_buf: Box::new(UnsafeCell::new(0)),
            wake_armed: Cell::new(false),
            disabled: Cell::new(disabled),
            setup,
        })
    }

    /// Whether a ring with every opcode loom needs can be created here.
    pub(crate) fn probe() -> io::Result<()> {
        let ring = IoUring::new(8)?;
        Self::check(&ring)
    }

    fn setup(entries: u32) -> io::Result<(IoUring, &'static str)> {
        Self::setup_with(entries, SETUP_ATTEMPTS)
    }

    /// Creates a ring with the first of `attempts` the kernel accepts.
    fn setup_with(entries: u32, attempts: &[SetupFlags]) -> io::Result<(IoUring, &'static str)> {
        let mut last_error = None;
        for &flags in attempts {
            let mut builder = IoUring::builder();
            builder
                .setup_cqsize(entries.saturating_mul(4))
                .setup_clamp();
            if flags.single_issuer {
                builder.setup_single_issuer().setup_r_disabled();
            }
            if flags.defer_taskrun {
                builder.setup_defer_taskrun();
            }
            if flags.coop_taskrun {
                builder.setup_coop_taskrun();
            }
            match builder.build(entries) {
                Ok(ring) => return Ok((ring, flags.describe())),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log::debug!("loom: io_uring refused {} (EINVAL)", flags.describe());
                    last_error = Some(e);
                }
                Err(e) => return Err(named("io_uring_setup", e)),
            }
        }
        Err(named(
            "io_uring_setup",
            last_error.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)),
        ))
    }

    fn check(ring: &IoUring) -> io::Result<()> {
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks IORING_FEAT_EXT_ARG (timed waits need Linux 5.11)",
            ));
        }
        if !ring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks IORING_FEAT_NODROP (Linux 5.5)",
            ));
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| named("io_uring probe", e))?;
        let missing: Vec<&str> = REQUIRED_OPCODES
            .iter()
            .filter(|(code, _)| !probe.is_supported(*code))
            .map(|(_, name)| *name)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring lacks opcodes: {}", missing.join(", ")),
            ))
        }
    }

    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// Enables the ring on the loop's thread (which becomes its single
    /// issuer) and arms the remote-wake read.
    pub(crate) fn start(&self) -> io::Result<()> {
        if self.disabled.get() {
            self.ring
                .borrow()
                .submitter()
                .register_enable_rings()
                .map_err(|e| named("io_uring enable", e))?;
            self.disabled.set(false);
            log::debug!("loom: io_uring ready ({})", self.setup);
        }
        self.arm_wake_read();
        Ok(())
    }

    fn arm_wake_read(&self) {
        let Some(fd) = self.remote.event_fd() else {
            return;
        };
        let entry = opcode::Read::new(types::Fd(fd), self.wake_buf.get().cast(), 8)
            .build()
            .user_data(WAKE);
        // SAFETY: `wake_buf` is boxed (stable) and outlives the read: it is
        // leaked in Drop unless the read's completion was reaped.
        if unsafe { self.try_push(&entry) } {
            self.wake_armed.set(true);
        }
        // A full queue here is retried at the next turn (wake_armed false).
    }

    /// Whether SQEs are queued or completions outstanding.
    pub(crate) fn has_pending(&self) -> bool {
        self.in_flight.get() > 0
    }

    /// Queues `entry` for the kernel, submitting the queue first if it is
    /// full. The completion of a tracked entry wakes a fiber; call only with
    /// an entry whose memory stays valid until its completion is reaped.
    ///
    /// # Safety
    /// Every pointer in `entry` stays valid until its CQE has been reaped
    /// (invariant 1, docs/ARCHITECTURE.md); its `user_data` is [`IGNORED`] or the
    /// address of a live [`Completion`] no other in-flight entry uses.
    pub(crate) unsafe fn push(&self, entry: &squeue::Entry, sched: &Scheduler) {
        loop {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.try_push(entry) } {
                return;
            }
            self.submit_or_make_room(sched);
        }
    }

    /// # Safety
    /// As for [`Uring::push`].
    unsafe fn try_push(&self, entry: &squeue::Entry) -> bool {
        let mut ring = self.ring.borrow_mut();
        // SAFETY: forwarded from the caller.
        let pushed = unsafe { ring.submission().push(entry) }.is_ok();
        if pushed && entry.get_user_data() != WAKE {
            self.in_flight.set(self.in_flight.get() + 1);
        }
        pushed
    }

    /// Submits a full queue. The kernel refuses new work while completions
    /// it could not post are waiting (`EBUSY`) or when it is short of memory
    /// (`EAGAIN`): reap, then the caller retries.
    fn submit_or_make_room(&self, sched: &Scheduler) {
        let result = self.ring.borrow().submit();
        match result {
            Ok(_) => {}
            Err(e) if is_retryable(&e) => {
                self.enter_and_reap(sched);
            }
            Err(e) => panic!("loom: io_uring_enter failed while submitting: {e}"),
        }
    }

    /// Asks the kernel to cancel the op whose completion is `target`. The
    /// op still produces its own CQE (maybe a success); the cancellation's
    /// CQE is ignored.
    pub(crate) fn cancel(&self, target: &Completion, sched: &Scheduler) {
        let entry = opcode::AsyncCancel::new(std::ptr::from_ref(target) as u64)
            .build()
            .user_data(IGNORED);
        // SAFETY: a cancel carries no pointers, and its CQE is ignored.
        unsafe { self.push(&entry, sched) };
    }

    /// See `Driver::turn`.
    pub(crate) fn turn(&self, wait: Wait, sched: &Scheduler) {
        if !self.wake_armed.get() {
            self.arm_wake_read();
            if !self.wake_armed.get() {
                // The queue is full: submit it to make room, then retry.
                let _ = self.ring.borrow().submit();
                self.arm_wake_read();
            }
        }
        // Without the eventfd read armed, nothing from another thread could
        // interrupt the wait: bound it, so such a wake-up is late, not lost.
        let wait = match wait {
            Wait::Forever if !self.wake_armed.get() && self.remote.event_fd().is_some() => {
                Wait::Until(UNARMED_WAIT)
            }
            Wait::Until(timeout) if !self.wake_armed.get() && self.remote.event_fd().is_some() => {
                Wait::Until(timeout.min(UNARMED_WAIT))
            }
            wait => wait,
        };
        let result = {
            let mut ring = self.ring.borrow_mut();
            match wait {
                Wait::No if self.in_flight.get() == 0 => Ok(0),
                Wait::No => enter_getevents(&mut ring),
                Wait::Forever => ring.submit_and_wait(1),
                Wait::Until(timeout) => {
                    let ts = Timespec::from(timeout);
                    ring.submitter()
                        .submit_with_args(1, &SubmitArgs::new().timespec(&ts))
                }
            }
        };
        match result {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_retryable(&e) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADR) => log::error!(
                "loom: io_uring dropped completions under memory pressure (EBADR); \
                 fibers waiting for them will not wake"
            ),
            Err(e) => panic!("loom: io_uring_enter failed: {e}"),
        }
        self.reap(sched);
    }

    /// Flushes completions the kernel holds back, then reaps them.
    fn enter_and_reap(&self, sched: &Scheduler) {
        let result = enter_getevents(&mut self.ring.borrow_mut());
        if let Err(e) = result
            && !is_retryable(&e)
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::error!("loom: io_uring_enter(GETEVENTS) failed: {e}");
        }
        self.reap(sched);
    }

    /// Takes every CQE off the completion queue, waking the fibers whose
    /// ops finished. If the queue overflowed, asks the kernel for the
    /// completions it kept back and reaps those too.
    fn reap(&self, sched: &Scheduler) {
        loop {
            let mut rearm = false;
            let overflowed = {
                let mut ring = self.ring.borrow_mut();
                let mut reaped = 0;
                for cqe in ring.completion() {
                    match cqe.user_data() {
                        WAKE => {
                            self.wake_armed.set(false);
                            rearm = true;
                        }
                        IGNORED => reaped += 1,
                        address => {
                            reaped += 1;
                            // SAFETY: tracked entries carry the address of a
                            // Completion that stays valid until this CQE is
                            // reaped (the `push` contract); this is that CQE.
                            let completion = unsafe { &*(address as *const Completion) };
                            completion.complete(cqe.result(), sched);
                        }
                    }
                }
                self.in_flight.set(self.in_flight.get() - reaped);
                ring.submission().cq_overflow()
            };
            if rearm {
                self.arm_wake_read();
            }
            if !overflowed {
                return;
            }
            let result = enter_getevents(&mut self.ring.borrow_mut());
            if let Err(e) = result
                && !is_retryable(&e)
            {
                log::error!("loom: flushing io_uring's overflowed completions failed: {e}");
                return;
            }
        }
    }
}

/// Submits what is queued and runs deferred completion work without
/// waiting for any (`GETEVENTS` with `min_complete = 0`).
fn enter_getevents(ring: &mut IoUring) -> io::Result<usize> {
    let to_submit = ring.submission().len() as u32;
    // SAFETY: no argument struct is passed (size 0); the flags and counts
    // are plain values io_uring_enter validates.
    unsafe {
        ring.submitter()
            .enter::<libc::sigset_t>(to_submit, 0, EnterFlags::GETEVENTS.bits(), None)
    }
}

fn is_retryable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN))
}

fn named(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Drop for Uring {
    /// Cancels whatever is still in flight and reaps it before the ring's
    /// memory goes away. Anything in flight here belongs to a fiber that
    /// was abandoned at shutdown, whose stack is leaked, so its buffers stay
    /// valid either way; the wait only makes the kernel let go of them.
    fn drop(&mut self) {
        if self.disabled.get() {
            return;
        }
        let pending = self.in_flight.get() + usize::from(self.wake_armed.get());
        if pending > 0 {
            let entry = opcode::AsyncCancel2::new(CancelBuilder::any())
                .build()
                .user_data(IGNORED);
            // SAFETY: a cancel carries no pointers.
            let _ = unsafe { self.ring.get_mut().submission().push(&entry) };
            self.in_flight.set(self.in_flight.get() + 1);
            let give_up = Instant::now() + Duration::from_secs(1);
            while self.in_flight.get() + usize::from(self.wake_armed.get()) > 0
                && Instant::now() < give_up
            {
                let ts = Timespec::from(Duration::from_millis(50));
                let ring = self.ring.get_mut();
                let _ = ring
                    .submitter()
                    .submit_with_args(1, &SubmitArgs::new().timespec(&ts));
                for cqe in ring.completion() {
                    // Completions are not delivered any more: their fibers
                    // are gone or abandoned.
                    if cqe.user_data() == WAKE {
                        self.wake_armed.set(false);
                    } else {
                        self.in_flight.set(self.in_flight.get() - 1);
                    }
                }
            }
        }
        if self.wake_armed.get() {
            // The kernel may still write into it: never free it.
            let leaked = std::mem::replace(&mut self.wake_buf, Box::new(UnsafeCell::new(0)));
            Box::leak(leaked);
        }
        if self.in_flight.get() > 0 {
            log::warn!(
                "loom: {} io_uring operations still in flight at shutdown",
                self.in_flight.get()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// To stderr even when the test passes (libtest captures `eprintln!`).
    fn say(message: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{message}");
    }

    /// The running kernel's (major, minor) version.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse().unwrap());
        (numbers.next().unwrap(), numbers.next().unwrap())
    }

    #[test]
    fn setup_takes_every_flag_the_kernel_has() {
        let Ok((_ring, setup)) = Uring::setup(8) else {
            // Refused outright (seccomp, io_uring_disabled): nothing to check.
            say("io_uring refused here: set-up flags not checked");
            return;
        };
        let expected = match kernel_version() {
            v if v >= (6, 1) => "SINGLE_ISSUER|R_DISABLED|DEFER_TASKRUN|COOP_TASKRUN",
            v if v >= (6, 0) => "SINGLE_ISSUER|R_DISABLED|COOP_TASKRUN",
            v if v >= (5, 19) => "COOP_TASKRUN",
            _ => "no flags",
        };
        assert_eq!(setup, expected, "kernel {:?}", kernel_version());
    }

    #[test]
    fn a_refused_flag_set_falls_back_to_the_next() {
        // DEFER_TASKRUN without SINGLE_ISSUER: EINVAL on every kernel (a
        // rule since 6.1, an unknown flag before).
        let refused = SetupFlags::new(false, true, false);
        let plain = SetupFlags::new(false, false, false);
        if Uring::setup_with(8, &[plain]).is_err() {
            say("io_uring refused here: the set-up fallback not checked");
            return;
        }
        let (_ring, setup) = Uring::setup_with(8, &[refused, plain]).unwrap();
        assert_eq!(setup, "no flags");
        let err = Uring::setup_with(8, &[refused]).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }

    #[test]
    fn the_kernel_has_every_opcode_and_feature_loom_uses() {
        match Uring::probe() {
            Ok(()) => {}
            // Below 5.11 (or where io_uring is refused) Auto must fall back.
            Err(e) if kernel_version() < (5, 11) => {
                say(&format!("no io_uring on this kernel: {e}"))
            }
            Err(e) => panic!("kernel {:?}: {e}", kernel_version()),
        }
    }
}
