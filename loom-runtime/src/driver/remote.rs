//! Waking a loop from another thread.
//!
//! Another thread (for now, a blocking-pool worker) finishes work for a
//! fiber, pushes the work's [`RemoteCompletion`] onto the loop's lock-free
//! stack and, only if the loop is parked in the kernel, interrupts that wait:
//! an eventfd write that io_uring has a read pending on, or mio's waker on
//! poll backends. A busy loop notices the stack at its next turn without any
//! system call on either side.
//!
//! The handshake is the classic store-then-load pair, both `SeqCst`: the
//! loop sets `sleeping` then checks the stack; a worker pushes then checks
//! `sleeping`. At least one of them sees the other's write, so a completion
//! is never left on the stack while the loop sleeps.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::fiber::control::FiberControl;
use crate::sched::Scheduler;

/// Marks one piece of work finished on another thread; lives in the
/// waiting fiber's frame, which stays put until `done` (invariant 1).
#[derive(Debug)]
pub(crate) struct RemoteCompletion {
    next: AtomicPtr<RemoteCompletion>,
    fiber: NonNull<FiberControl>,
    /// Set on the loop's thread when the completion is taken off the stack.
    done: Cell<bool>,
}

impl RemoteCompletion {
    pub(crate) fn new(fiber: NonNull<FiberControl>) -> RemoteCompletion {
        RemoteCompletion {
            next: AtomicPtr::new(ptr::null_mut()),
            fiber,
            done: Cell::new(false),
        }
    }

    /// Whether the loop has received this completion. Read on the loop's
    /// thread only.
    pub(crate) fn is_done(&self) -> bool {
        self.done.get()
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

/// The part of a loop other threads may touch. See the module docs.
pub(crate) struct Remote {
    completed: AtomicPtr<RemoteCompletion>,
    sleeping: AtomicBool,
    signal: Signal,
}

// SAFETY: the raw pointers on the `completed` stack are only dereferenced by
// the loop's thread after it popped them; other threads only push.
unsafe impl Send for Remote {}
// SAFETY: as above; every field other threads touch is atomic (or the
// signal, whose wake is thread-safe).
unsafe impl Sync for Remote {}

impl Remote {
    pub(crate) fn new(signal: Signal) -> Remote {
        Remote {
            completed: AtomicPtr::new(ptr::null_mut()),
            sleeping: AtomicBool::new(false),
            signal,
        }
    }

    /// Hands `completion` back to the loop and wakes the loop if it sleeps.
    ///
    /// # Safety
    /// `completion` is valid and not on the stack yet; after this call the
    /// caller must not touch it again (its fiber may resume and free it).
    pub(crate) unsafe fn complete(&self, completion: NonNull<RemoteCompletion>) {
        let node = completion.as_ptr();
        let mut head = self.completed.load(Ordering::Relaxed);
        loop {
            // SAFETY: the node is valid and still ours until the CAS below
            // publishes it (contract).
            unsafe { (*node).next.store(head, Ordering::Relaxed) };
            match self.completed.compare_exchange_weak(
                head,
                node,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        if self.sleeping.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Interrupts the loop's wait in the kernel.
    pub(crate) fn wake(&self) {
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
    /// awake) when completions are already waiting.
    pub(crate) fn prepare_to_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if self.completed.load(Ordering::SeqCst).is_null() {
            true
        } else {
            self.sleeping.store(false, Ordering::Relaxed);
            false
        }
    }

    /// The loop is back from its wait.
    pub(crate) fn woke_up(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Takes every completion off the stack and wakes its fiber. Loop
    /// thread only.
    pub(crate) fn drain(&self, sched: &Scheduler) {
        if self.completed.load(Ordering::Relaxed).is_null() {
            return;
        }
        let mut node = self.completed.swap(ptr::null_mut(), Ordering::Acquire);
        while let Some(completion) = NonNull::new(node) {
            // SAFETY: pushed by `complete`, whose caller gave it up; its
            // fiber waits for `done`, so it is still valid. The Acquire swap
            // makes the worker's writes visible.
            let completion = unsafe { completion.as_ref() };
            node = completion.next.load(Ordering::Relaxed);
            let fiber = completion.fiber;
            completion.done.set(true);
            sched.wake(fiber);
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
            .field("sleeping", &self.sleeping)
            .finish_non_exhaustive()
    }
}
