//! Work across loops: [`spawn_on`], [`broadcast`] and the [`SendJoinHandle`]
//! they return, plus the messages that carry them — all through the target
//! loop's mailbox, so the fiber is created, run, cancelled and retired on
//! its own loop's thread (invariant 2, docs/ARCHITECTURE.md).
//!
//! A `spawn_on` allocates twice: the message that carries the closure to
//! the other loop, and the shared packet its result comes back in. Spawning
//! on the current loop with [`crate::spawn`] allocates nothing.

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;

use crate::driver::remote::{Envelope, Remote};
use crate::fiber::JoinHandle;
use crate::rt::current;
use crate::rt::event_loop::{EventLoop, opened_on};
use crate::sched::Scheduler;
use crate::stack::control::{FiberControl, FiberName};
use crate::sync::flavour::{RawLock, SharedLock};
use crate::sync::waiter::{WaitList, wait_until};

/// Runs `f` as a new fiber on loop `index` of the current runtime and
/// returns a handle any fiber — on any loop — or thread may join.
///
/// The closure travels to the other loop through its mailbox; the fiber is
/// spawned there at that loop's next turn. Spawning on the current loop
/// this way works too, but [`crate::spawn`] is cheaper (no allocation, no
/// `Send` bound).
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
    let packet = Arc::new(Packet::new());
    let job = Box::new(SpawnJob {
        envelope: Envelope::new(SpawnJob::<F, T>::open),
        f,
        packet: Arc::clone(&packet),
    });
    let envelope = NonNull::from(Box::leak(job)).cast::<Envelope>();
    // SAFETY: the job was just leaked for the mailbox, which owns it until
    // it is opened.
    if unsafe { remote.send(envelope) }.is_err() {
        // SAFETY: refused, so still ours; open(None) frees it.
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
            (state.joiners.notify_all(), state.awaiter.take())
        });
        wakes.deliver();
        if let Some(awaiter) = awaiter {
            awaiter.wake();
        }
    }
}

/// The message that carries a `spawn_on` closure to its loop.
#[repr(C)]
struct SpawnJob<F, T> {
    envelope: Envelope,
    f: F,
    packet: Arc<Packet<T>>,
}

impl<F, T> SpawnJob<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    /// # Safety
    /// `envelope` heads a leaked `Box<SpawnJob<F, T>>`, opened once.
    unsafe fn open(envelope: NonNull<Envelope>, sched: Option<&Scheduler>) {
        // SAFETY: forwarded contract.
        opened_on(sched, |lp| unsafe { Self::open_on(envelope, lp) });
    }

    /// [`SpawnJob::open`] on the loop (`None`: it stopped).
    ///
    /// # Safety
    /// As for `open`.
    unsafe fn open_on(envelope: NonNull<Envelope>, lp: Option<&EventLoop>) {
        let Some(lp) = lp else {
            // SAFETY: contract: a leaked box, ours now.
            let job = unsafe { Box::from_raw(envelope.cast::<SpawnJob<F, T>>().as_ptr()) };
            let packet = Arc::clone(&job.packet);
            drop(job);
            packet.finish(Err(Box::new(io::Error::other(
                "loom::spawn_on: the target loop stopped before the fiber could start",
            ))));
            return;
        };
        if !lp.has_stack_permit() {
            lp.defer_spawn(envelope);
            return;
        }
        // SAFETY: contract.
        let job = unsafe { Box::from_raw(envelope.cast::<SpawnJob<F, T>>().as_ptr()) };
        let SpawnJob { f, packet, .. } = *job;
        let fiber_packet = Arc::clone(&packet);
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
    packet: Arc<Packet<T>>,
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
    packet: Arc<Packet<T>>,
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
                packet: Arc::clone(&self.packet),
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
