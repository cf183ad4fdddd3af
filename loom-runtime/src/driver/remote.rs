//! Reaching a loop from another thread.
//!
//! Another thread — a blocking-pool worker, another loop, a plain thread
//! sending on a channel — puts an [`Envelope`] in the loop's
//! [mailbox](super::mailbox) and, only if the loop is parked in the
//! kernel, interrupts that wait: an eventfd write that io_uring has a read
//! pending on, or mio's waker on poll backends. A busy loop finds the
//! message at its next turn without any system call on either side.
//!
//! Messages are opened on the loop's thread, so whatever they do to fibers
//! (wake one, spawn one, cancel one) happens where the fiber lives
//! (invariant 2, docs/ARCHITECTURE.md).

use std::cell::Cell;
use std::fmt;
use std::io;
use std::ptr::NonNull;

use super::mailbox::{Closed, Mailbox, Node};
use crate::sched::Scheduler;
use crate::stack::control::FiberControl;

/// What opens a message: see [`Envelope`].
pub(crate) type Open = unsafe fn(NonNull<Envelope>, Option<&Scheduler>);

/// The head of every message: embed it first in a `#[repr(C)]` struct.
#[repr(C)]
pub(crate) struct Envelope {
    node: Node,
    /// Acts on the message on its loop's thread (`Some(scheduler)`, the
    /// loop's; the loop is also the thread's current one), or disposes of
    /// it (`None`) when the loop stopped before reading it. Called once.
    open: Open,
}

impl Envelope {
    pub(crate) fn new(open: Open) -> Envelope {
        Envelope {
            node: Node::new(),
            open,
        }
    }

    /// The function that acts on this message.
    pub(crate) fn open(&self) -> Open {
        self.open
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope").finish_non_exhaustive()
    }
}

/// A message that wakes one fiber: how blocking-pool jobs and cross-thread
/// wake-ups come back. Lives in the waiting fiber's frame, which the fiber
/// does not leave until [`FiberWake::is_delivered`] (invariant 1).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct FiberWake {
    envelope: Envelope,
    fiber: NonNull<FiberControl>,
    /// Set on the loop's thread when the message is opened.
    delivered: Cell<bool>,
}

impl FiberWake {
    pub(crate) fn new(fiber: NonNull<FiberControl>) -> FiberWake {
        FiberWake {
            envelope: Envelope::new(FiberWake::open),
            fiber,
            delivered: Cell::new(false),
        }
    }

    /// The fiber this message wakes.
    pub(crate) fn fiber(&self) -> NonNull<FiberControl> {
        self.fiber
    }

    /// Makes a delivered message ready to be sent again.
    pub(crate) fn reset(&self) {
        self.delivered.set(false);
    }

    /// Whether the loop has opened this message. Loop thread only.
    pub(crate) fn is_delivered(&self) -> bool {
        self.delivered.get()
    }

    /// Marks the message delivered and wakes its fiber, for a sender that
    /// runs on the fiber's own loop and needs no mailbox.
    pub(crate) fn deliver_here(&self, sched: &Scheduler) {
        self.delivered.set(true);
        sched.wake(self.fiber);
    }

    pub(crate) fn envelope(&self) -> NonNull<Envelope> {
        NonNull::from(&self.envelope)
    }

    /// # Safety
    /// `envelope` heads a live `FiberWake`.
    unsafe fn open(envelope: NonNull<Envelope>, sched: Option<&Scheduler>) {
        // SAFETY: repr(C) with the envelope first (contract); its fiber
        // waits for `delivered`, so it is still in place.
        let wake = unsafe { envelope.cast::<FiberWake>().as_ref() };
        match sched {
            Some(sched) => wake.deliver_here(sched),
            // A loop stops only once all its fibers finished, and none of
            // them finishes while it waits for this message.
            None => log::error!("loom: a wake-up reached a loop that had stopped"),
        }
    }
}

/// How a parked loop is interrupted.
pub(crate) enum Signal {
    /// An eventfd the io_uring driver keeps a read pending on.
    #[cfg(target_os = "linux")]
    EventFd(std::os::fd::OwnedFd),
    /// mio's waker (eventfd on Linux, `EVFILT_USER` on kqueue).
    Mio(mio::Waker),
}

/// The part of a loop other threads may touch: its mailbox and the signal
/// that interrupts its wait.
pub(crate) struct Remote {
    mailbox: Mailbox,
    signal: Signal,
}

impl Remote {
    pub(crate) fn new(signal: Signal) -> Remote {
        Remote {
            mailbox: Mailbox::new(),
            signal,
        }
    }

    /// Puts a message in the loop's mailbox and wakes the loop if it sleeps.
    ///
    /// # Errors
    /// `Closed` — the message untouched and still the caller's — once the
    /// loop has stopped.
    ///
    /// # Safety
    /// `envelope` heads a live message that is in no mailbox; it stays valid
    /// and untouched by the caller until opened (its fiber may resume and
    /// free it as soon as it is).
    pub(crate) unsafe fn send(&self, envelope: NonNull<Envelope>) -> Result<(), Closed> {
        // SAFETY: the node is the envelope's first field (repr(C)), and the
        // message stays valid until opened (contract).
        if unsafe { self.mailbox.push(envelope.cast::<Node>()) }? {
            self.wake();
        }
        Ok(())
    }

    /// Interrupts the loop's wait in the kernel.
    fn wake(&self) {
        let result = match &self.signal {
            #[cfg(target_os = "linux")]
            Signal::EventFd(fd) => {
                use std::os::fd::AsRawFd;
                let one = 1u64;
                crate::sys::syscall!(write(
                    fd.as_raw_fd(),
                    (&raw const one).cast(),
                    size_of::<u64>()
                ))
                .map(drop)
            }
            Signal::Mio(waker) => waker.wake(),
        };
        // EAGAIN means the counter is already non-zero: the loop will wake.
        if let Err(e) = result
            && e.kind() != io::ErrorKind::WouldBlock
        {
            log::error!("loom: cannot wake an event loop: {e}");
        }
    }

    /// The loop is about to wait in the kernel. Returns `false` (and stays
    /// awake) when messages are already waiting.
    pub(crate) fn prepare_to_sleep(&self) -> bool {
        self.mailbox.prepare_to_sleep()
    }

    /// The loop is back from its wait.
    pub(crate) fn woke_up(&self) {
        self.mailbox.woke_up();
    }

    /// Whether messages wait to be opened (a cheap hint).
    pub(crate) fn has_messages(&self) -> bool {
        self.mailbox.has_messages()
    }

    /// Opens every waiting message, oldest first, and returns how many
    /// there were. Loop thread only; `sched` is the loop's.
    pub(crate) fn drain(&self, sched: &Scheduler) -> usize {
        let mut opened = 0;
        for node in self.mailbox.take_all() {
            let envelope = node.cast::<Envelope>();
            // SAFETY: every node in the mailbox heads an Envelope (`send`
            // is the only producer) that stays valid until opened; `open`
            // is read before the message is handed on.
            unsafe { (envelope.as_ref().open)(envelope, Some(sched)) };
            opened += 1;
        }
        sched.stats().mail_received.add(opened as u64);
        opened
    }

    /// Refuses further messages and disposes of the waiting ones. Called
    /// once, on the loop's thread, when the loop stops.
    pub(crate) fn close(&self) {
        for node in self.mailbox.close() {
            let envelope = node.cast::<Envelope>();
            // SAFETY: as in `drain`.
            unsafe { (envelope.as_ref().open)(envelope, None) };
        }
    }

    /// The eventfd io_uring reads, if that is this loop's signal.
    #[cfg(target_os = "linux")]
    pub(crate) fn event_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match &self.signal {
            Signal::EventFd(fd) => Some(fd.as_raw_fd()),
            Signal::Mio(_) => None,
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}
