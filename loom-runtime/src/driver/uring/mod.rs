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
//! 16 times as many; should it overflow anyway, the kernel keeps the extra
//! completions (`IORING_FEAT_NODROP`) and the next turn flushes them.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, SubmitArgs, Timespec};
use io_uring::{EnterFlags, IoUring, opcode, squeue, types};

use super::remote::{Remote, Signal};
use super::{DriverConfig, Host, Wait, run_on_pool};
use crate::op::{Deadline, Op};
use crate::sched::Scheduler;
use crate::stack::control::FiberControl;
use crate::stats::WaitKind;
use crate::sys::{cancelled, syscall};
use crate::wheel::TimerEntry;

mod setup;

/// `user_data` of SQEs whose completion nobody waits for: cancellations and
/// fire-and-forget closes. Completion addresses are never 0.
pub(crate) const IGNORED: u64 = 0;
/// The longest kernel wait while the remote-wake read could not be queued.
const UNARMED_WAIT: Duration = Duration::from_millis(1);

/// `user_data` of the pending read on the remote-wake eventfd.
const WAKE: u64 = 1;

/// Where a finished operation's result is written: lives on the waiting
/// fiber's stack, next to the op. Its address is the op's io_uring
/// `user_data`, so it must stay put until the completion has been reaped
/// (invariant 1, docs/ARCHITECTURE.md).
#[derive(Debug)]
pub(crate) struct Completion {
    fiber: NonNull<FiberControl>,
    result: Cell<Option<i32>>,
}

impl Completion {
    pub(crate) fn new(fiber: NonNull<FiberControl>) -> Completion {
        Completion {
            fiber,
            result: Cell::new(None),
        }
    }

    /// The kernel's result (`-errno` on failure), once reaped.
    pub(crate) fn result(&self) -> Option<i32> {
        self.result.get()
    }

    pub(crate) fn complete(&self, result: i32, sched: &Scheduler) {
        self.result.set(Some(result));
        sched.wake(self.fiber);
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
    /// What this kernel runs as ring ops; an op it lacks runs on the
    /// blocking pool instead.
    opcodes: setup::Opcodes,
}

impl Uring {
    pub(crate) fn new(config: DriverConfig) -> io::Result<Uring> {
        let (ring, setup) = setup::build(config.ring_entries)?;
        let opcodes = setup::check(&ring)?;
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
            opcodes,
        })
    }

    /// Runs `op` on the host's current fiber (see `Driver::run`): returns
    /// only once the op's own CQE was reaped (invariant 1,
    /// docs/ARCHITECTURE.md). On cancellation or a passed deadline it submits
    /// an `ASYNC_CANCEL` and keeps waiting; the cancel's own CQE is
    /// [`IGNORED`], so the op's completion is the only one that refers to
    /// this frame. An op that completed despite the cancellation reports its
    /// real result: nothing is lost, and the fiber's next blocking call
    /// returns the cancellation error.
    pub(crate) fn run<O: Op, H: Host>(
        &self,
        host: &H,
        op: &mut O,
        deadline: Option<Deadline>,
    ) -> io::Result<u32> {
        let me = host.sched().current().expect("checked by run");
        // SAFETY: the running fiber's block is valid while it runs.
        let control = unsafe { me.as_ref() };
        let completion = Completion::new(me);
        let entry = op.sqe().user_data(std::ptr::from_ref(&completion) as u64);
        if !self.opcodes.has(entry.get_opcode() as u8) {
            // Added by a later kernel than this one (ftruncate, waitid…).
            return run_on_pool(host, op);
        }
        // SAFETY: `op` and the buffers it borrows outlive this function, and
        // this function returns only after `completion` received the CQE (the
        // loop below), so every pointer in `entry` stays valid (invariant 1).
        unsafe { self.push(&entry, host.sched()) };
        // Only a deadline needs a timer, and most calls have none.
        let timer = deadline.map(|_| TimerEntry::new(Some(me)));
        let armed = (timer.as_ref().zip(deadline))
            .is_some_and(|(timer, deadline)| host.arm_timer(timer, deadline.at));
        let mut gave_up: Option<io::Error> = None;
        if let Some(deadline) = deadline.filter(|_| !armed) {
            // Already past it: the op still gets its one try — the kernel
            // issues it before the cancel behind it — so data already
            // waiting is returned, as std returns it under any timeout.
            gave_up = Some(deadline.error());
            self.cancel(&completion, host.sched());
        }
        let raw = loop {
            host.sched().suspend(WaitKind::Io);
            if let Some(raw) = completion.result() {
                break raw;
            }
            if gave_up.is_none() {
                if control.cancelled.get() {
                    gave_up = Some(cancelled());
                } else if timer.as_ref().is_some_and(TimerEntry::fired) {
                    gave_up = deadline.map(Deadline::error);
                }
                if gave_up.is_some() {
                    self.cancel(&completion, host.sched());
                }
            }
        };
        if let Some(timer) = timer.as_ref().filter(|_| armed) {
            host.disarm_timer(timer);
        }
        match (result_from_raw(raw), gave_up) {
            (Err(_), Some(error)) => Err(error),
            (result, _) => result,
        }
    }

    /// Whether this kernel runs `code` as a ring op; [`Uring::run`] sends
    /// the attempt of an op it lacks to the blocking pool instead.
    pub(crate) fn has_op(&self, code: u8) -> bool {
        self.opcodes.has(code)
    }

    /// Whether a ring with every opcode loom needs can be created here.
    pub(crate) fn probe() -> io::Result<()> {
        let ring = IoUring::new(8)?;
        setup::check(&ring).map(drop)
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
        sched.stats().driver_waits.incr();
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
        sched.stats().ops_cancelled.incr();
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
        if !matches!(wait, Wait::No) || self.in_flight.get() > 0 {
            sched.stats().driver_waits.incr();
        }
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
        sched.stats().driver_waits.incr();
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
                sched.stats().driver_events.add(reaped as u64);
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

/// Maps a negative errno from the kernel to an `io::Error`.
pub(crate) fn result_from_raw(result: i32) -> io::Result<u32> {
    if result < 0 {
        Err(io::Error::from_raw_os_error(-result))
    } else {
        Ok(result as u32)
    }
}
