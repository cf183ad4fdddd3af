//! The cross-loop wake-up handshake of `loom-runtime/src/sync/waiter.rs`,
//! modelled on the real mailbox: a receiver waits on a "channel" (a mutex
//! around a queue of values and a list of waiters) from its loop's thread; a
//! sender on another thread queues a value, unlinks the oldest waiter under
//! the mutex, marks it notified, releases the mutex and pushes the waiter's
//! own node — its first field — into the waiter's loop's mailbox, signalling
//! the loop if `push` says so. The loop drains its mailbox and marks each
//! waiter found there delivered.
//!
//! A receiver may be interrupted (a timeout, fired at any moment by a timer
//! thread that also ends the loop's wait in the kernel). It then takes the
//! mutex and removes itself if still linked; if it was notified instead, it
//! waits until its message was delivered — its node is in the mailbox, or
//! about to be — and passes the notification on to the next waiter.
//!
//! Checked in every explored interleaving: no value is lost or received
//! twice, no notification is lost (a receiver that waits for ever with a
//! value queued is a deadlock), a waiter is never touched after its owner
//! left its frame (its `gone` cell: a sender's access that does not happen
//! before the owner leaves is a data race the checker reports; under Miri
//! the waiter is freed, so such an access is a use after free), and no
//! message is still on its way to a loop when that loop stops (it closes
//! its mailbox and finds it empty, and a later push would fail).

mod common;

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use common::{Arc, AtomicBool, EventFd, Mutex, UnsafeCell, check, thread};
use loom_model_tests::mailbox::{Closed, Mailbox, Node};

/// A loop's remote end (`driver::remote::Remote`): its mailbox and the
/// eventfd that interrupts its wait in the kernel.
struct Loop {
    mailbox: Mailbox,
    efd: EventFd,
}

impl Loop {
    fn new() -> Loop {
        Loop {
            mailbox: Mailbox::new(),
            efd: EventFd::new(),
        }
    }

    /// `Remote::send`.
    ///
    /// # Safety
    /// `node` heads a waiter that stays in place until delivered.
    unsafe fn send(&self, node: NonNull<Node>) -> Result<(), Closed> {
        // SAFETY: forwarded.
        if unsafe { self.mailbox.push(node) }? {
            self.efd.write();
        }
        Ok(())
    }

    /// `Remote::drain`: opens every message — each one a waiter's wake-up
    /// (`FiberWake::open`). Loop thread only.
    fn drain(&self) {
        for node in self.mailbox.take_all() {
            // SAFETY: only waiters' nodes are sent here (repr(C), node
            // first), and a waiter stays in place until delivered.
            let waiter = unsafe { node.cast::<Waiter>().as_ref() };
            waiter.assert_in_place();
            waiter.delivered.with_mut(|delivered| {
                // SAFETY: only this loop's thread touches `delivered`.
                unsafe { *delivered = true }
            });
        }
    }

    /// Waits in the kernel, unless the mailbox handshake says a message is
    /// already there. Loop thread only.
    fn park(&self) {
        if self.mailbox.prepare_to_sleep() {
            self.efd.read();
        }
        self.mailbox.woke_up();
    }

    /// The loop stops: nothing may still be on its way to it.
    fn stop(&self) {
        assert_eq!(
            self.mailbox.close().count(),
            0,
            "a message reached a loop none of whose fibers waits for it"
        );
    }
}

/// A waiter (`sync::waiter::Waiter` with a `FiberWake`): the node first,
/// so that the waiter itself is the message that wakes it.
#[repr(C)]
struct Waiter {
    node: Node,
    /// The loop the waiting fiber lives on.
    owner: Arc<Loop>,
    /// Set by the notifier that unlinked it; under the channel's mutex.
    notified: UnsafeCell<bool>,
    /// Set when its loop opened its message; owner loop's thread only.
    delivered: UnsafeCell<bool>,
    /// Set when the owner leaves the frame the waiter lives in.
    gone: UnsafeCell<bool>,
}

impl Waiter {
    fn new(owner: &Arc<Loop>) -> Waiter {
        Waiter {
            node: Node::new(),
            owner: Arc::clone(owner),
            notified: UnsafeCell::new(false),
            delivered: UnsafeCell::new(false),
            gone: UnsafeCell::new(false),
        }
    }

    /// An access to the waiter from any thread: it must happen before the
    /// owner leaves (or the checker reports a race on `gone`).
    fn assert_in_place(&self) {
        // SAFETY: a read; the write in `leave` must not race it.
        assert!(
            !self.gone.with(|gone| unsafe { *gone }),
            "waiter used after its frame was left"
        );
    }

    fn is_delivered(&self) -> bool {
        // SAFETY: owner loop's thread only.
        self.delivered.with(|delivered| unsafe { *delivered })
    }

    /// Under the channel's mutex.
    fn is_notified(&self) -> bool {
        // SAFETY: under the channel's mutex.
        self.notified.with(|notified| unsafe { *notified })
    }

    /// `Waiter::reset`: ready to wait again once delivered.
    fn reset(&self) {
        assert!(self.is_delivered());
        // SAFETY: not linked, notified and delivered: only the owner
        // touches these now.
        self.notified
            .with_mut(|notified| unsafe { *notified = false });
        // SAFETY: as above.
        self.delivered
            .with_mut(|delivered| unsafe { *delivered = false });
    }

    fn leave(&self) {
        // SAFETY: the owner's write; every other access must precede it.
        self.gone.with_mut(|gone| unsafe { *gone = true });
    }
}

/// A pointer to a waiter on a wait list.
#[derive(Clone, Copy, PartialEq)]
struct WaiterRef(NonNull<Waiter>);

// SAFETY: the waiter it names is only accessed as the handshake allows.
unsafe impl Send for WaiterRef {}

struct State {
    values: VecDeque<u64>,
    waiters: VecDeque<WaiterRef>,
}

/// A channel: values and waiters under one mutex.
struct Channel {
    state: Mutex<State>,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            state: Mutex::new(State {
                values: VecDeque::new(),
                waiters: VecDeque::new(),
            }),
        }
    }
}

/// `WaitList::notify_one` (under the mutex): unlinks the oldest waiter and
/// marks it notified. Deliver it after releasing the mutex.
fn notify_one(state: &mut State) -> Option<WaiterRef> {
    let next = state.waiters.pop_front()?;
    // SAFETY: a linked waiter stays in place until unlinked by its owner
    // or notified and delivered.
    let waiter = unsafe { next.0.as_ref() };
    waiter.assert_in_place();
    // SAFETY: under the channel's mutex.
    waiter
        .notified
        .with_mut(|notified| unsafe { *notified = true });
    Some(next)
}

/// `deliver_one` for a fiber of another loop: sends the waiter's own node
/// to its loop. The waiter may be gone as soon as the push is made.
fn deliver(waiter: WaiterRef) {
    // SAFETY: notified and not delivered yet, so still in place.
    let waiter_ref = unsafe { waiter.0.as_ref() };
    waiter_ref.assert_in_place();
    // Keeps the loop's remote end alive past the push (as `deliver_one`
    // does with the Remote's count).
    let owner = Arc::clone(&waiter_ref.owner);
    // SAFETY: the node heads the waiter (repr(C)), which stays in place
    // until delivered; it is in no mailbox (notified once per wait).
    unsafe { owner.send(waiter.0.cast::<Node>()) }
        .expect("a wake-up reached a loop that had stopped");
}

/// Queues `value` and wakes the oldest waiter, if any (what a sender does).
fn send(channel: &Channel, value: u64) {
    let notified = {
        let mut state = channel.state.lock().unwrap();
        state.values.push_back(value);
        notify_one(&mut state)
    };
    if let Some(waiter) = notified {
        deliver(waiter);
    }
}

/// Why a receive gave up.
#[derive(Debug, PartialEq)]
struct TimedOut;

/// Where waiters go when their owner left: kept allocated under the model
/// checker, so that a late access is reported as a race on `gone` rather
/// than read freed memory; freed at once under Miri, which then reports a
/// late access as a use after free.
type Graveyard = Vec<Box<Waiter>>;

fn bury(waiter: Box<Waiter>, graveyard: &mut Graveyard) {
    waiter.leave();
    if cfg!(miri) {
        drop(waiter);
    } else {
        graveyard.push(waiter);
    }
}

/// `wait_until` for a fiber on `lp`'s thread: takes a value, or waits on
/// the channel until `timer` fires (if there is one).
fn recv(
    channel: &Channel,
    lp: &Arc<Loop>,
    timer: Option<&AtomicBool>,
    graveyard: &mut Graveyard,
) -> Result<u64, TimedOut> {
    if let Some(value) = channel.state.lock().unwrap().values.pop_front() {
        return Ok(value);
    }
    // The waiter's frame.
    let waiter = Box::new(Waiter::new(lp));
    let me = WaiterRef(NonNull::from(&*waiter));
    let fired = || timer.is_some_and(|timer| timer.load(Ordering::Acquire));
    let result = loop {
        let taken = {
            let mut state = channel.state.lock().unwrap();
            let taken = state.values.pop_front();
            if taken.is_none() {
                state.waiters.push_back(me);
            }
            taken
        };
        if let Some(value) = taken {
            break Ok(value);
        }
        // `Waiter::sleep`: the loop runs (drains its mailbox, sleeps in the
        // kernel) until the wake-up is delivered or the timer fires.
        let slept = loop {
            lp.drain();
            if waiter.is_delivered() {
                break Ok(());
            }
            if fired() {
                break Err(TimedOut);
            }
            lp.park();
        };
        match slept {
            Ok(()) => waiter.reset(),
            Err(timed_out) => {
                let passed_on = {
                    let mut state = channel.state.lock().unwrap();
                    if waiter.is_notified() {
                        Some(notify_one(&mut state))
                    } else {
                        let linked = state.waiters.iter().position(|&w| w == me);
                        state
                            .waiters
                            .remove(linked.expect("not notified, so linked"));
                        None
                    }
                };
                if let Some(next) = passed_on {
                    // `wait_delivered`: its node is, or is about to be, in
                    // the mailbox; the waiter may not leave before.
                    while !waiter.is_delivered() {
                        lp.park();
                        lp.drain();
                    }
                    if let Some(next) = next {
                        deliver(next);
                    }
                }
                break Err(timed_out);
            }
        }
    };
    bury(waiter, graveyard);
    result
}

/// Runs a loop thread whose one fiber receives once.
fn spawn_receiver(
    channel: &Arc<Channel>,
    timer: Option<&Arc<AtomicBool>>,
) -> (Arc<Loop>, thread::JoinHandle<Result<u64, TimedOut>>) {
    let lp = Arc::new(Loop::new());
    let handle = thread::spawn({
        let (channel, lp, timer) = (Arc::clone(channel), Arc::clone(&lp), timer.cloned());
        move || {
            let mut graveyard = Graveyard::new();
            let received = recv(&channel, &lp, timer.as_deref(), &mut graveyard);
            lp.stop();
            drop(graveyard);
            received
        }
    });
    (lp, handle)
}

/// A timer that fires at any moment and interrupts `lp`'s kernel wait.
fn spawn_timer(lp: &Arc<Loop>, fired: &Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let (lp, fired) = (Arc::clone(lp), Arc::clone(fired));
    thread::spawn(move || {
        fired.store(true, Ordering::Release);
        lp.efd.write();
    })
}

/// One receiver, one value: the wake-up races the receiver's registration
/// and sleep (no timeout).
#[test]
fn a_wake_up_reaches_a_sleeping_loop() {
    check(4, || {
        let channel = Arc::new(Channel::new());
        let (_lp, receiver) = spawn_receiver(&channel, None);
        send(&channel, 1);
        assert_eq!(receiver.join().unwrap(), Ok(1));
        assert!(channel.state.lock().unwrap().values.is_empty());
    });
}

/// One receiver, one value, and a timeout racing the wake-up: the value is
/// either received or still queued, and the waiter does not leave while its
/// wake-up is on its way.
#[test]
fn a_wake_up_races_a_timeout() {
    check(4, || {
        let channel = Arc::new(Channel::new());
        let fired = Arc::new(AtomicBool::new(false));
        let (lp, receiver) = spawn_receiver(&channel, Some(&fired));
        let timer = spawn_timer(&lp, &fired);
        send(&channel, 1);
        let received = receiver.join().unwrap();
        timer.join().unwrap();
        let left: Vec<_> = channel.state.lock().unwrap().values.drain(..).collect();
        match received {
            Ok(value) => assert_eq!((value, left), (1, vec![])),
            Err(TimedOut) => assert_eq!(left, [1]),
        }
    });
}

/// Two loops each wait for a value; the first may time out — after it was
/// notified, it must pass the notification on, or the second would wait for
/// ever next to a queued value.
#[test]
fn a_timed_out_waiter_passes_its_notification_on() {
    check(3, || {
        let channel = Arc::new(Channel::new());
        let fired = Arc::new(AtomicBool::new(false));
        let (lp1, impatient) = spawn_receiver(&channel, Some(&fired));
        let (_lp2, patient) = spawn_receiver(&channel, None);
        let timer = spawn_timer(&lp1, &fired);
        send(&channel, 1);
        send(&channel, 2);
        let mut values = vec![patient.join().unwrap().expect("no timeout")];
        if let Ok(value) = impatient.join().unwrap() {
            values.push(value);
        }
        timer.join().unwrap();
        values.extend(channel.state.lock().unwrap().values.drain(..));
        values.sort_unstable();
        assert_eq!(values, [1, 2]);
    });
}
