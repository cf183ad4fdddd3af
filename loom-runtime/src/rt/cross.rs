//! Work across loops: [`spawn_on`], [`broadcast`] and the [`SendJoinHandle`]
//! they return, plus the messages that carry them — all through the target
//! loop's mailbox, so the fiber is created, run, cancelled and retired on
//! its own loop's thread (invariant 2, docs/ARCHITECTURE.md).
//!
//! A `spawn_on` needs one block of memory the spawner and the target loop
//! share: the message that carries the closure, followed by the packet the
//! result comes back in, reference-counted by the handle and the fiber.
//! Blocks are recycled, not freed: each thread keeps a cache of them
//! (`rt/spawn_slots.rs`) and a block goes back to the cache of the thread that
//! took it, from whichever thread lets go of it last. In steady state a
//! `spawn_on` therefore allocates nothing; a closure and result too big
//! for a block, or more than `MAX_CACHED_SLOTS` blocks in use at once
//! from one thread, fall back to one heap allocation per spawn.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem::{MaybeUninit, offset_of};
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::task::{Context, Poll, Waker};
use std::thread;

use crate::driver::remote::{Envelope, Remote};
use crate::fiber::JoinHandle;
use crate::rt::current;
use crate::rt::event_loop::{EventLoop, opened_on};
use crate::rt::spawn_slots::{SLOT_ALIGN, SLOT_JOB_BYTES, Slot, give_back_slot, take_slot};
use crate::sched::Scheduler;
use crate::stack::control::{FiberControl, FiberName};
use crate::sync::flavour::{RawLock, SharedLock};
use crate::sync::waiter::{WaitList, spin_until, wait_until};

/// Runs `f` as a new fiber on loop `index` of the current runtime and
/// returns a handle any fiber — on any loop — or thread may join.
///
/// The closure travels to the other loop through its mailbox; the fiber is
/// spawned there at that loop's next turn. Spawning on the current loop
/// this way works too, but [`crate::spawn`] is cheaper (no `Send` bound,
/// no cross-thread traffic).
///
/// If the fiber cannot be created there (its stack cannot be mapped, or
/// the loop already stopped), joining returns `Err` with the
/// [`io::Error`] as payload.
///
/// # Panics
///
/// Outside a loom runtime, or if `index >= loom::rt::loop_count()`.
///
/// # Examples
///
/// ```
/// let rt = loom::Runtime::builder().threads(2).build()?;
/// rt.run(|| {
///     let other = loom::spawn_on(1, loom::rt::loop_index);
///     assert_eq!(other.join().unwrap(), 1);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn spawn_on<F, T>(index: usize, f: F) -> SendJoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (remote, count) = current::with_current("loom::spawn_on", |lp| {
        (lp.shared.remotes.get(index).cloned(), lp.loop_count())
    });
    let Some(remote) = remote else {
        panic!("loom::spawn_on: there is no loop {index}; this runtime has {count} loops");
    };
    let job = SpawnJob::<F, T>::new(f);
    let envelope = job.cast::<Envelope>();
    // The job's two references: the handle's, and the one the message
    // carries to the fiber.
    // SAFETY: `job` was just initialised with two references.
    let packet = unsafe { PacketRef::<T>::adopt(job) };
    // SAFETY: the job is initialised and in no mailbox; the message's
    // reference keeps it valid until opened.
    if unsafe { remote.send(envelope) }.is_err() {
        // SAFETY: refused, so still the message's; open(None) disposes of it.
        unsafe { SpawnJob::<F, T>::open(envelope, None) };
    }
    SendJoinHandle {
        packet,
        remote,
        index,
    }
}

/// Runs `f` once on every loop of the current runtime (loop `i` gets the
/// `i`-th handle). With a listener bound with
/// [`ListenOptions::reuse_port`](crate::net::ListenOptions::reuse_port)
/// on each loop, this is a thread-per-core server.
///
/// # Panics
///
/// Outside a loom runtime.
///
/// # Examples
///
/// ```
/// let rt = loom::Runtime::builder().threads(2).build()?;
/// let loops = rt.run(|| {
///     let handles = loom::broadcast(loom::rt::loop_index);
///     handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
/// });
/// assert_eq!(loops, [0, 1]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn broadcast<F, T>(f: F) -> Vec<SendJoinHandle<T>>
where
    F: Fn() -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    let count = current::with_current("loom::broadcast", EventLoop::loop_count);
    let f = Arc::new(f);
    (0..count)
        .map(|index| {
            let f = Arc::clone(&f);
            spawn_on(index, move || f())
        })
        .collect()
}

/// Where a cross-loop fiber's result comes back, shared by the fiber and
/// its handle.
struct Packet<T> {
    /// Set (under the lock) once the result is in: what a joiner spins on
    /// before it waits (see `sync::waiter::spin_until`), without the lock.
    done: AtomicBool,
    state: SharedLock<PacketState<T>>,
}

struct PacketState<T> {
    result: Option<thread::Result<T>>,
    finished: bool,
    joiners: WaitList,
    /// The fiber running the job, once spawned and until it finishes. Only
    /// used on the target loop's thread (to cancel it there).
    fiber: Option<FiberAddr>,
    cancel_requested: bool,
    /// The task awaiting the handle as a `Future`, woken when the result
    /// is in (after the lock is released: a waker is user code).
    awaiter: Option<Waker>,
}

/// A fiber's control block address, as plain data: it is only turned back
/// into a pointer on the fiber's own loop.
#[derive(Clone, Copy)]
struct FiberAddr(usize);

impl<T> Packet<T> {
    fn new() -> Packet<T> {
        Packet {
            done: AtomicBool::new(false),
            state: SharedLock::new(PacketState {
                result: None,
                finished: false,
                joiners: WaitList::new(),
                fiber: None,
                cancel_requested: false,
                awaiter: None,
            }),
        }
    }

    fn finish(&self, result: thread::Result<T>) {
        let (wakes, awaiter) = self.state.with(|state| {
            state.result = Some(result);
            state.finished = true;
            state.fiber = None;
            self.done.store(true, Ordering::Release);
            (state.joiners.notify_all(), state.awaiter.take())
        });
        wakes.deliver();
        if let Some(awaiter) = awaiter {
            awaiter.wake();
        }
    }
}

/// The part of a spawn's block the handle and the fiber share: a packet
/// and its reference count.
#[repr(C)]
struct PacketBlock<T> {
    refs: AtomicUsize,
    /// Drops the packet and gives the whole block back; called by the
    /// last reference.
    release: unsafe fn(NonNull<PacketBlock<T>>),
    packet: Packet<T>,
}

/// One counted reference to a spawn's packet (like an `Arc<Packet<T>>`,
/// whose block is a recycled [`SpawnJob`]).
struct PacketRef<T> {
    block: NonNull<PacketBlock<T>>,
}

// SAFETY: a `PacketRef` gives shared access to a `Packet<T>`, whose state
// sits behind a mutex and atomics: like `Arc<Packet<T>>`, it may move to
// and be shared with other threads when the result `T` may be sent.
unsafe impl<T: Send> Send for PacketRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for PacketRef<T> {}

impl<T> PacketRef<T> {
    /// Takes over one of the references `job` was created with.
    ///
    /// # Safety
    /// `job` is initialised and that reference is not used otherwise.
    unsafe fn adopt<F>(job: NonNull<SpawnJob<F, T>>) -> PacketRef<T> {
        PacketRef {
            // SAFETY: `job` is valid (contract); this only projects.
            block: unsafe { NonNull::new_unchecked(&raw mut (*job.as_ptr()).block) },
        }
    }
}

impl<T> Deref for PacketRef<T> {
    type Target = Packet<T>;

    fn deref(&self) -> &Packet<T> {
        // SAFETY: our reference keeps the block alive and initialised.
        unsafe { &self.block.as_ref().packet }
    }
}

impl<T> Clone for PacketRef<T> {
    fn clone(&self) -> Self {
        // SAFETY: as in `deref`.
        unsafe { self.block.as_ref() }
            .refs
            .fetch_add(1, Ordering::Relaxed);
        PacketRef { block: self.block }
    }
}

impl<T> Drop for PacketRef<T> {
    fn drop(&mut self) {
        // SAFETY: as in `deref`; `Arc`'s protocol: Release on every drop,
        // Acquire before the last reference frees the block.
        let block = unsafe { self.block.as_ref() };
        if block.refs.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            // SAFETY: that was the last reference: nobody else touches the
            // block any more.
            unsafe { (block.release)(self.block) };
        }
    }
}

/// The message that carries a `spawn_on` closure to its loop, followed by
/// the packet the result comes back in: one block, in a recycled
/// [`Slot`] when it fits (else on the heap, alone).
#[repr(C)]
struct SpawnJob<F, T> {
    envelope: Envelope,
    /// Whether the block is a cached [`Slot`] (else a `Box`).
    cached: bool,
    block: PacketBlock<T>,
    /// Moved out when the message is opened.
    f: MaybeUninit<F>,
}

impl<F, T> SpawnJob<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    /// Whether a job of this type fits in a cached slot.
    const FITS: bool = size_of::<Self>() <= SLOT_JOB_BYTES && align_of::<Self>() <= SLOT_ALIGN;

    /// A new job with two references: the message's (the fiber's, once
    /// spawned) and the handle's.
    fn new(f: F) -> NonNull<Self> {
        let slot = if Self::FITS { take_slot() } else { None };
        let cached = slot.is_some();
        let job = match slot {
            Some(slot) => slot.cast::<Self>(),
            None => NonNull::from(Box::leak(Box::new(MaybeUninit::<Self>::uninit()))).cast(),
        };
        // SAFETY: `job` is ours, unused, and large and aligned enough for
        // a `Self` (a fresh box, or a free slot checked by `FITS`).
        unsafe {
            job.write(SpawnJob {
                envelope: Envelope::new(Self::open),
                cached,
                block: PacketBlock {
                    refs: AtomicUsize::new(2),
                    release: Self::release,
                    packet: Packet::new(),
                },
                f: MaybeUninit::new(f),
            });
        }
        job
    }

    /// Drops the packet and gives the block back.
    ///
    /// # Safety
    /// `block` is the `block` of a `SpawnJob<F, T>` whose last reference
    /// is gone; its closure was already moved out (the message holds a
    /// reference until it is opened, and opening takes the closure).
    unsafe fn release(block: NonNull<PacketBlock<T>>) {
        // SAFETY: `block` is inside a `SpawnJob<F, T>` (contract, repr(C)).
        let job = unsafe { block.byte_sub(offset_of!(Self, block)) }.cast::<Self>();
        // SAFETY: no reference is left, so the packet is ours to drop, and
        // then the memory: a slot goes back to its cache, a box is freed
        // as the `MaybeUninit<Self>` it was allocated as.
        unsafe {
            ptr::drop_in_place(&raw mut (*job.as_ptr()).block.packet);
            if (*job.as_ptr()).cached {
                give_back_slot(job.cast::<Slot>());
            } else {
                drop(Box::from_raw(job.cast::<MaybeUninit<Self>>().as_ptr()));
            }
        }
    }

    /// # Safety
    /// `envelope` heads a job made by [`SpawnJob::new`] whose message
    /// reference is still unused, opened once (or set aside, see
    /// `defer_spawn`, and opened again later).
    unsafe fn open(envelope: NonNull<Envelope>, sched: Option<&Scheduler>) {
        // SAFETY: forwarded contract.
        opened_on(sched, |lp| unsafe { Self::open_on(envelope, lp) });
    }

    /// [`SpawnJob::open`] on the loop (`None`: it stopped).
    ///
    /// # Safety
    /// As for `open`.
    unsafe fn open_on(envelope: NonNull<Envelope>, lp: Option<&EventLoop>) {
        let job = envelope.cast::<Self>();
        if let Some(lp) = lp
            && !lp.has_stack_permit()
        {
            lp.defer_spawn(envelope);
            return;
        }
        // SAFETY: the job is initialised and its closure still in place
        // (contract); it is moved out once, here, and the message's
        // reference taken over.
        let (f, fiber_packet) = unsafe {
            (
                ptr::read(&raw const (*job.as_ptr()).f).assume_init(),
                PacketRef::adopt(job),
            )
        };
        let Some(lp) = lp else {
            drop(f);
            fiber_packet.finish(Err(Box::new(io::Error::other(
                "loom::spawn_on: the target loop stopped before the fiber could start",
            ))));
            return;
        };
        let packet = fiber_packet.clone();
        let event_loop = current::current_rc("loom::spawn_on");
        let spawned = event_loop.spawn(FiberName::empty(), None, move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            fiber_packet.finish(result);
        });
        match spawned {
            Ok(spawned) => {
                let handle = JoinHandle::new(event_loop, spawned);
                let fiber = handle.fiber_ptr();
                let cancel = packet.state.with(|state| {
                    state.fiber = Some(FiberAddr(fiber.as_ptr() as usize));
                    state.cancel_requested
                });
                if cancel {
                    lp.cancel(fiber);
                }
                // Detached: the packet carries the result.
                drop(handle);
            }
            Err(e) => packet.finish(Err(Box::new(e))),
        }
    }
}

/// Asks a loop to cancel the fiber running a `spawn_on` job.
#[repr(C)]
struct CancelJob<T> {
    envelope: Envelope,
    packet: PacketRef<T>,
}

impl<T> CancelJob<T> {
    /// # Safety
    /// `envelope` heads a leaked `Box<CancelJob<T>>`, opened once.
    unsafe fn open(envelope: NonNull<Envelope>, sched: Option<&Scheduler>) {
        // SAFETY: forwarded contract.
        opened_on(sched, |lp| unsafe { Self::open_on(envelope, lp) });
    }

    /// [`CancelJob::open`] on the loop (`None`: it stopped).
    ///
    /// # Safety
    /// As for `open`.
    unsafe fn open_on(envelope: NonNull<Envelope>, lp: Option<&EventLoop>) {
        // SAFETY: contract.
        let job = unsafe { Box::from_raw(envelope.cast::<CancelJob<T>>().as_ptr()) };
        let fiber = job.packet.state.with(|state| state.fiber);
        if let (Some(lp), Some(FiberAddr(addr))) = (lp, fiber) {
            // SAFETY: `fiber` is set on this loop's thread while the fiber
            // is unfinished and cleared by the fiber itself when it
            // finishes, so it names a live fiber of this loop.
            let fiber = unsafe { NonNull::new_unchecked(addr as *mut FiberControl) };
            lp.cancel(fiber);
        }
    }
}

/// An owned permission to join a fiber started with [`spawn_on`] or
/// [`broadcast`]. Unlike [`crate::JoinHandle`] it is `Send`: any fiber, on
/// any loop, or a plain thread may join it. Dropping it detaches the fiber.
pub struct SendJoinHandle<T> {
    packet: PacketRef<T>,
    remote: Arc<Remote>,
    index: usize,
}

impl<T: Send + 'static> SendJoinHandle<T> {
    /// Waits for the fiber to finish and returns its result, like
    /// [`crate::JoinHandle::join`]: `Err` carries a panic's payload, or the
    /// [`io::Error`] that kept the fiber from being created.
    ///
    /// A fiber waiting here suspends; a thread outside the runtime blocks.
    /// If the *joining* fiber is cancelled, `join` returns `Err` with the
    /// cancellation error (see [`crate::fiber::is_cancelled`]) and the
    /// joined fiber is detached; likewise with an `io::Error` of kind
    /// `TimedOut` if its call-tree deadline
    /// ([`crate::time::with_deadline`]) passes first.
    pub fn join(self) -> thread::Result<T> {
        if !self.packet.done.load(Ordering::Acquire) {
            // A fiber that is quick to finish is not worth a waiter and a
            // wake-up through this loop's mailbox.
            spin_until(None, || self.packet.done.load(Ordering::Relaxed));
        }
        let joined = wait_until(
            &self.packet.state,
            |state| &state.joiners,
            None,
            true,
            "SendJoinHandle::join",
            |state| state.result.take(),
        );
        match joined {
            Ok(result) => result,
            Err(interrupted) => Err(Box::new(interrupted.into_io_error())),
        }
    }

    /// Whether the fiber has finished. Never blocks.
    pub fn is_finished(&self) -> bool {
        self.packet.state.with(|state| state.finished)
    }

    /// Asks the fiber to stop, like [`crate::JoinHandle::cancel`]; the
    /// request travels to its loop. A fiber not started yet starts
    /// cancelled.
    pub fn cancel(&self) {
        let running = self.packet.state.with(|state| {
            state.cancel_requested = true;
            !state.finished && state.fiber.is_some()
        });
        if running {
            let job = Box::new(CancelJob {
                envelope: Envelope::new(CancelJob::<T>::open),
                packet: self.packet.clone(),
            });
            let envelope = NonNull::from(Box::leak(job)).cast::<Envelope>();
            // SAFETY: leaked for the mailbox, which owns it until opened.
            if unsafe { self.remote.send(envelope) }.is_err() {
                // SAFETY: refused, so still ours; `None` only frees it.
                unsafe { CancelJob::<T>::open(envelope, None) };
            }
        }
    }

    /// The index of the loop the fiber runs on.
    pub fn loop_index(&self) -> usize {
        self.index
    }
}

/// Awaiting the handle waits for the fiber, as [`SendJoinHandle::join`]
/// does, without blocking the awaiting task's thread: the fiber's loop
/// wakes the task when the fiber finishes. Dropping the future (the
/// handle) detaches the fiber; it does not cancel it.
///
/// # Panics
///
/// If polled again after it returned its result.
///
/// # Examples
///
/// From async code on a plain thread — any executor; a minimal one here:
///
/// ```
/// use std::sync::mpsc;
///
/// let rt = loom::Runtime::builder().threads(2).build()?;
/// let (handles, from_loom) = mpsc::channel();
/// let awaiter = std::thread::spawn(move || {
///     let handle: loom::SendJoinHandle<usize> = from_loom.recv().unwrap();
///     // Outside a runtime, `loom::block_on` blocks the thread.
///     loom::block_on(async move { handle.await.unwrap() })
/// });
/// rt.run(move || {
///     handles.send(loom::spawn_on(1, || 6 * 7)).unwrap();
///     // The main fiber waits too, so the runtime lives until then.
///     loom::unblock(move || awaiter.join().unwrap()).unwrap()
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
impl<T: Send + 'static> Future for SendJoinHandle<T> {
    type Output = thread::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let registered = self.packet.state.with(|state| {
            if let Some(result) = state.result.take() {
                return Some(Poll::Ready(result));
            }
            assert!(
                !state.finished,
                "loom: SendJoinHandle polled after it returned its result"
            );
            state
                .awaiter
                .as_ref()
                .is_some_and(|awaiter| awaiter.will_wake(cx.waker()))
                .then_some(Poll::Pending)
        });
        if let Some(poll) = registered {
            return poll;
        }
        // A new waker: cloned before the lock and the old one dropped after
        // it, since both run the waker's code.
        let waker = cx.waker().clone();
        let (poll, unused) = self.packet.state.with(|state| match state.result.take() {
            Some(result) => (Poll::Ready(result), Some(waker)),
            None => (Poll::Pending, state.awaiter.replace(waker)),
        });
        drop(unused);
        poll
    }
}

impl<T> fmt::Debug for SendJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendJoinHandle")
            .field("loop_index", &self.index)
            .finish_non_exhaustive()
    }
}
