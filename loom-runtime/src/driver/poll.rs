//! The readiness backend: mio, so epoll on Linux and kqueue on macOS/BSD.
//!
//! Every socket is registered once, edge-triggered, for both directions,
//! under a token that carries its slot index and the slot's generation.
//! Per slot and direction the driver keeps a readiness bit and a FIFO of
//! parked fibers:
//!
//! - an op tries its system call only while the bit is set; `EAGAIN` clears
//!   the bit and parks the fiber at the back of the list. A short read of a
//!   stream socket clears it too (`Op::drained`): the socket is empty, and
//!   the next read parks without a system call that would fail;
//! - an event sets the bit and wakes *every* fiber parked in that
//!   direction, oldest first, so two fibers on one socket never lose a
//!   wake-up (each retries; a loser parks again);
//! - an event whose generation is not the slot's current one belongs to a
//!   socket closed earlier — maybe earlier in the same batch — and is
//!   dropped.
//!
//! Since the loop is single-threaded, events arrive only while every fiber
//! is suspended: between an `EAGAIN` and parking nothing can slip through.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};

use super::remote::{Remote, Signal};
use super::{Backend, DriverConfig, Host, Wait, run_on_pool};
use crate::list::{Link, List, container_of};
use crate::op::{Deadline, Op, Readiness};
use crate::sched::Scheduler;
use crate::stack::control::FiberControl;
use crate::stats::WaitKind;
use crate::sys::cancelled;
use crate::wheel::TimerEntry;

/// The readiness backend this platform has.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const NATIVE: Backend = Backend::Epoll;
/// The readiness backend this platform has.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const NATIVE: Backend = Backend::Kqueue;

const WAKE_TOKEN: Token = Token(usize::MAX);
const NO_SLOT: u32 = u32::MAX;

/// One direction of a socket's readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read = 0,
    Write = 1,
}

/// A registered socket's slot: index and generation, packed into the
/// mio token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SourceKey {
    index: u32,
    generation: u32,
}

impl SourceKey {
    fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.index as usize)
    }

    fn from_token(token: Token) -> SourceKey {
        SourceKey {
            index: token.0 as u32,
            generation: (token.0 >> 32) as u32,
        }
    }
}

// Tokens pack two u32s.
const _: () = assert!(
    size_of::<usize>() >= 8,
    "loom's poll backend needs a 64-bit target"
);

#[derive(Debug)]
struct SourceState {
    generation: Cell<u32>,
    /// Next free slot while this one is free ([`NO_SLOT`] ends the list).
    next_free: Cell<u32>,
    ready: [Cell<bool>; 2],
    /// The peer shut its side down (or the socket failed): final, and
    /// reported by one event only, so reads stay ready from then on.
    read_closed: Cell<bool>,
    waiters: [List; 2],
}

/// A fiber parked on a socket; lives in the fiber's frame.
#[derive(Debug)]
pub(crate) struct Waiter {
    link: Link,
    fiber: NonNull<FiberControl>,
}

impl Waiter {
    pub(crate) fn new(fiber: NonNull<FiberControl>) -> Waiter {
        Waiter {
            link: Link::new(),
            fiber,
        }
    }
}

/// See the module documentation.
pub(crate) struct Poll {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    /// Boxed so a slot's lists never move while the vector grows; slots are
    /// reused (with a new generation), never freed before the driver.
    #[expect(clippy::vec_box, reason = "waiter lists must keep their address")]
    slots: RefCell<Vec<Box<SourceState>>>,
    /// Head of the intrusive list of free slots, so closing a socket never
    /// allocates.
    free_head: Cell<u32>,
    parked: Cell<usize>,
    remote: Arc<Remote>,
}

impl Poll {
    pub(crate) fn new(config: DriverConfig) -> io::Result<Poll> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        Ok(Poll {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(config.events)),
            slots: RefCell::new(Vec::new()),
            free_head: Cell::new(NO_SLOT),
            parked: Cell::new(0),
            remote: Arc::new(Remote::new(Signal::Mio(waker))),
        })
    }

    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// Whether fibers wait for readiness (so a busy loop should still poll).
    pub(crate) fn has_parked(&self) -> bool {
        self.parked.get() > 0
    }

    /// Registers `fd` (non-blocking) for both directions, edge-triggered.
    pub(crate) fn register(&self, fd: RawFd) -> io::Result<SourceKey> {
        let index = match self.free_head.get() {
            NO_SLOT => {
                let mut slots = self.slots.borrow_mut();
                let index = u32::try_from(slots.len()).map_err(|_| {
                    io::Error::new(io::ErrorKind::OutOfMemory, "too many registered sockets")
                })?;
                slots.push(Box::new(SourceState {
                    generation: Cell::new(0),
                    next_free: Cell::new(NO_SLOT),
                    ready: [Cell::new(true), Cell::new(true)],
                    read_closed: Cell::new(false),
                    waiters: [List::new(), List::new()],
                }));
                index
            }
            free => {
                self.free_head.set(self.state(free).next_free.get());
                free
            }
        };
        let state = self.state(index);
        state.ready[0].set(true);
        state.ready[1].set(true);
        state.read_closed.set(false);
        let key = SourceKey {
            index,
            generation: state.generation.get(),
        };
        let result = self.poll.borrow().registry().register(
            &mut SourceFd(&fd),
            key.token(),
            Interest::READABLE | Interest::WRITABLE,
        );
        match result {
            Ok(()) => Ok(key),
            Err(e) => {
                self.release(index);
                Err(e)
            }
        }
    }

    /// Forgets a socket about to be closed or handed back to std. No fiber
    /// can be parked on it: ops borrow the socket for their whole duration.
    pub(crate) fn deregister(&self, key: SourceKey, fd: RawFd) {
        if self.lookup(key).is_none() {
            return;
        }
        // Failure means the fd is already gone from the interest list.
        let _ = self.poll.borrow().registry().deregister(&mut SourceFd(&fd));
        self.release(key.index);
    }

    fn release(&self, index: u32) {
        let state = self.state(index);
        debug_assert!(state.waiters.iter().all(List::is_empty));
        state.generation.set(state.generation.get().wrapping_add(1));
        state.next_free.set(self.free_head.get());
        self.free_head.set(index);
    }

    fn state(&self, index: u32) -> &SourceState {
        let slots = self.slots.borrow();
        let state: *const SourceState = &*slots[index as usize];
        // SAFETY: slots are boxed and never dropped before `self`, so the
        // state outlives the borrow of `self` even after `slots` grows.
        unsafe { &*state }
    }

    fn lookup(&self, key: SourceKey) -> Option<&SourceState> {
        let in_range = (key.index as usize) < self.slots.borrow().len();
        let state = in_range.then(|| self.state(key.index))?;
        (state.generation.get() == key.generation).then_some(state)
    }

    /// Whether the last attempt in `direction` may not have drained the
    /// socket (so trying the system call is worth it).
    pub(crate) fn is_ready(&self, key: SourceKey, direction: Direction) -> bool {
        self.lookup(key)
            .is_some_and(|state| state.ready[direction as usize].get())
    }

    /// An attempt in `direction` returned `EAGAIN`.
    pub(crate) fn clear_ready(&self, key: SourceKey, direction: Direction) {
        if let Some(state) = self.lookup(key) {
            state.ready[direction as usize].set(false);
        }
    }

    /// A short read emptied the socket: the next attempt would be an
    /// `EAGAIN`, so the next read parks at once instead. Not once the peer
    /// has closed: end of stream raises no further event.
    fn clear_drained(&self, key: SourceKey, direction: Direction) {
        if let Some(state) = self.lookup(key)
            && !state.read_closed.get()
        {
            state.ready[direction as usize].set(false);
        }
    }

    /// Parks `waiter` until the socket becomes ready in `direction`.
    ///
    /// # Safety
    /// `waiter` stays at its address until [`Poll::unpark`] was called for
    /// it.
    pub(crate) unsafe fn park(&self, key: SourceKey, direction: Direction, waiter: &Waiter) {
        let state = self
            .lookup(key)
            .expect("loom: parking on a socket that is not registered");
        // SAFETY: forwarded from this function's contract.
        unsafe { state.waiters[direction as usize].push_back(&waiter.link) };
        self.parked.set(self.parked.get() + 1);
    }

    /// Takes `waiter` off the socket's list if an event has not already.
    pub(crate) fn unpark(&self, key: SourceKey, direction: Direction, waiter: &Waiter) {
        if waiter.link.is_linked() {
            let state = self
                .lookup(key)
                .expect("loom: a parked socket is registered until its ops end");
            // SAFETY: a linked waiter of this key is in this direction's list.
            unsafe { state.waiters[direction as usize].remove(&waiter.link) };
            self.parked.set(self.parked.get() - 1);
        }
    }

    /// See `Driver::turn`.
    pub(crate) fn turn(&self, wait: Wait, sched: &Scheduler) {
        let timeout = match wait {
            Wait::No => Some(Duration::ZERO),
            Wait::Until(timeout) => Some(timeout),
            Wait::Forever => None,
        };
        let mut events = self.events.borrow_mut();
        sched.stats().driver_waits.incr();
        if let Err(e) = self.poll.borrow_mut().poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            panic!("loom: waiting for {} events failed: {e}", NATIVE);
        }
        for event in events.iter() {
            sched.stats().driver_events.incr();
            if event.token() == WAKE_TOKEN {
                continue; // the remote queue is drained by Driver::turn
            }
            let Some(state) = self.lookup(SourceKey::from_token(event.token())) else {
                continue; // a socket closed since the event was queued
            };
            let failed = event.is_error();
            if failed || event.is_read_closed() {
                state.read_closed.set(true);
            }
            if failed || event.is_readable() || event.is_read_closed() {
                self.wake_all(state, Direction::Read, sched);
            }
            if failed || event.is_writable() || event.is_write_closed() {
                self.wake_all(state, Direction::Write, sched);
            }
        }
    }

    fn wake_all(&self, state: &SourceState, direction: Direction, sched: &Scheduler) {
        state.ready[direction as usize].set(true);
        let waiters = &state.waiters[direction as usize];
        loop {
            let link = waiters.pop_front();
            if link.is_null() {
                return;
            }
            self.parked.set(self.parked.get() - 1);
            // SAFETY: only Waiter links are put on these lists, and a waiter
            // stays in its frame while linked (the `park` contract).
            let waiter = unsafe { &*container_of!(link, Waiter, link) };
            sched.wake(waiter.fiber);
        }
    }
}

impl fmt::Debug for Poll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poll")
            .field("backend", &NATIVE)
            .field("slots", &self.slots.borrow().len())
            .field("parked", &self.parked.get())
            .finish()
    }
}

/// Running ops: retried on readiness, or on the blocking pool.
impl Poll {
    /// Runs `op` on the host's current fiber (see `Driver::run`): nothing
    /// is in the kernel while the fiber is parked, and a `Blocking` op runs
    /// on the blocking pool, which keeps it until done.
    pub(crate) fn run<O: Op, H: Host>(
        &self,
        host: &H,
        op: &mut O,
        source: Option<SourceKey>,
        deadline: Option<Deadline>,
    ) -> io::Result<u32> {
        match op.readiness() {
            Readiness::Blocking => run_on_pool(host, op),
            Readiness::Immediate => op.attempt(),
            Readiness::Read => self.run_ready(host, op, source, Direction::Read, deadline),
            Readiness::Write => self.run_ready(host, op, source, Direction::Write, deadline),
        }
    }

    /// Retries `op` whenever the socket is ready, parking the fiber on
    /// `EAGAIN` (see `Driver::run`).
    fn run_ready<O: Op, H: Host>(
        &self,
        host: &H,
        op: &mut O,
        source: Option<SourceKey>,
        direction: Direction,
        deadline: Option<Deadline>,
    ) -> io::Result<u32> {
        let source = source.expect("readiness ops run on registered sockets");
        let me = host.sched().current().expect("checked by run");
        // SAFETY: the running fiber's block is valid while it runs.
        let control = unsafe { me.as_ref() };
        // Built when the op first waits under a deadline, armed once.
        let mut timer: Option<TimerEntry> = None;
        let mut armed = false;
        // Once the deadline has passed the op is tried one last time
        // whatever the readiness bit says, so data already waiting is
        // returned, as std returns it under any timeout.
        let mut passed = false;
        let result = loop {
            if passed || self.is_ready(source, direction) {
                match op.attempt() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.clear_ready(source, direction);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Ok(n) if op.drained(n) => {
                        self.clear_drained(source, direction);
                        break Ok(n);
                    }
                    result => break result,
                }
            }
            if passed {
                host.sched().stats().ops_cancelled.incr();
                break Err(deadline.expect("only a deadline passes").error());
            }
            if !armed && let Some(deadline) = deadline {
                armed = host.arm_timer(timer.insert(TimerEntry::new(Some(me))), deadline.at);
                if !armed {
                    passed = true;
                    continue;
                }
            }
            let waiter = Waiter::new(me);
            // SAFETY: `waiter` is unparked below, before this iteration ends.
            unsafe { self.park(source, direction, &waiter) };
            host.sched().suspend(WaitKind::Io);
            self.unpark(source, direction, &waiter);
            if control.cancelled.get() {
                host.sched().stats().ops_cancelled.incr();
                break Err(cancelled());
            }
            passed = timer.as_ref().is_some_and(TimerEntry::fired);
        };
        if let Some(timer) = timer.as_ref().filter(|_| armed) {
            host.disarm_timer(timer);
        }
        result
    }
}
