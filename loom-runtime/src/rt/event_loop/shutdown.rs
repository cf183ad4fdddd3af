//! Shutting a loop down: cancel every fiber and give them the shutdown
//! timeout, abandon (leak) the ones that ignore it, and tell the other
//! loops to do the same through their mailboxes.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use super::EventLoop;
use crate::driver::remote::{Envelope, Open, Remote};
use crate::rt::current::with_current;
use crate::sched::Scheduler;

impl EventLoop {
    /// Starts this loop's shutdown: cancels every fiber (and those spawned
    /// from now on), which then get the shutdown timeout to finish.
    pub(crate) fn begin_shutdown(&self) {
        if self.shutdown_deadline.get().is_some() {
            return;
        }
        self.shutdown_deadline
            .set(Some(Instant::now() + self.config.shutdown_timeout));
        if self.sched.unfinished_count() > 0 {
            log::debug!(
                "main fiber finished; cancelling {} fibers",
                self.sched.unfinished_count()
            );
        }
        self.cancel_all();
    }

    pub(super) fn cancel_all(&self) {
        self.cancel_new.set(true);
        self.sched.for_each_unfinished(|fiber| self.cancel(fiber));
    }

    /// Gives up on fibers that ignored cancellation. Their stacks stay
    /// mapped forever: freeing them would need unwinding a suspended
    /// coroutine, which `panic = "abort"` cannot do and which would run
    /// user code at an arbitrary point.
    pub(crate) fn abandon_unfinished(&self) {
        if self.sched.unfinished_count() > 0 {
            // A wake-up for an abandoned fiber may still be on its way from
            // another thread; its mailbox must outlive the runtime.
            std::mem::forget(Arc::clone(self.driver.remote()));
        }
        self.sched.for_each_unfinished(|fiber| {
            // SAFETY: unfinished fibers' blocks are valid.
            let control = unsafe { fiber.as_ref() };
            log::warn!(
                "loom: fiber {:?} (#{}) did not finish after being cancelled; leaking its {} KiB stack",
                control.name,
                control.id,
                control.slot.stack_bytes() / 1024
            );
            self.pool.leak_slot(&control.slot);
        });
    }

    /// Tells every other loop to shut down (loop 0, once main returned).
    pub(crate) fn shut_down_other_loops(&self) {
        for (index, remote) in self.shared.remotes.iter().enumerate() {
            if index != self.index {
                send_boxed(remote, ShutDown::open);
            }
        }
    }
}

/// Runs `f` with the loop a message is opened on: the thread's current
/// loop when the mailbox hands over its scheduler, `None` when the loop
/// stopped before the message was read.
pub(crate) fn opened_on<R>(
    sched: Option<&Scheduler>,
    f: impl FnOnce(Option<&EventLoop>) -> R,
) -> R {
    match sched {
        Some(_) => with_current("a loop's mailbox", |lp| f(Some(lp))),
        None => f(None),
    }
}

/// Sends a message with no content but its envelope.
fn send_boxed(remote: &Remote, open: Open) {
    let envelope = NonNull::from(Box::leak(Box::new(Envelope::new(open))));
    // SAFETY: leaked for the mailbox, which owns it until opened.
    if unsafe { remote.send(envelope) }.is_err() {
        // SAFETY: refused, so still ours.
        drop(unsafe { Box::from_raw(envelope.as_ptr()) });
    }
}

/// Asks a loop to begin its shutdown.
struct ShutDown;

impl ShutDown {
    /// # Safety
    /// `envelope` is a leaked `Box<Envelope>`, opened once.
    unsafe fn open(envelope: NonNull<Envelope>, sched: Option<&Scheduler>) {
        // SAFETY: forwarded contract.
        opened_on(sched, |lp| unsafe { Self::open_on(envelope, lp) });
    }

    /// [`ShutDown::open`] on the loop (`None`: it stopped).
    ///
    /// # Safety
    /// As for `open`.
    unsafe fn open_on(envelope: NonNull<Envelope>, lp: Option<&EventLoop>) {
        // SAFETY: contract.
        drop(unsafe { Box::from_raw(envelope.as_ptr()) });
        if let Some(lp) = lp {
            lp.begin_shutdown();
        }
    }
}
