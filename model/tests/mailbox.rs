//! The mailbox on its own: the queue (every message received exactly once,
//! each producer's in order), the sleeping handshake (no lost wake-up, at
//! most one signal per sleep) and `close` (a push racing it is either
//! drained by it or refused, never lost).
//!
//! Without Miri these run under the model checker, which explores every
//! interleaving (and every outcome of the weak memory orderings it models)
//! within a preemption bound. Under Miri the same scenarios run a few times
//! on real threads, plus a larger stress test.

mod common;

use std::ptr::NonNull;

use common::{Arc, EventFd, UnsafeCell, check, thread};
use loom_model_tests::mailbox::{Closed, Mailbox, Node};

/// A message: the node first, then its content, written by the producer
/// before the push and read by the consumer after the drain (so the model
/// checker flags a missing happens-before between the two).
#[repr(C)]
struct Msg {
    node: Node,
    /// (producer, sequence number)
    id: UnsafeCell<(usize, usize)>,
}

/// Allocates a message; the mailbox owns it from a successful push until
/// the consumer reclaims it.
fn new_msg(producer: usize, seq: usize) -> NonNull<Node> {
    let msg = Box::new(Msg {
        node: Node::new(),
        id: UnsafeCell::new((0, 0)),
    });
    msg.id.with_mut(|id| {
        // SAFETY: not shared yet.
        unsafe { *id = (producer, seq) }
    });
    NonNull::from(Box::leak(msg)).cast::<Node>()
}

/// Frees a message the consumer took off the mailbox (or whose push was
/// refused) and returns its id.
///
/// # Safety
/// `node` heads a message made by `new_msg` that is no longer in a mailbox.
unsafe fn reclaim(node: NonNull<Node>) -> (usize, usize) {
    // SAFETY: contract; `Node` is `Msg`'s first field (repr(C)).
    let msg = unsafe { Box::from_raw(node.cast::<Msg>().as_ptr()) };
    // SAFETY: the producer's write happened before the push that published
    // the message, which happened before the drain that returned it.
    msg.id.with(|id| unsafe { *id })
}

/// Pushes `count` messages from `producer`, signalling `efd` whenever the
/// push says so. Returns how many pushes asked for a signal.
fn produce(mailbox: &Mailbox, efd: &EventFd, producer: usize, count: usize) -> usize {
    let mut signals = 0;
    for seq in 0..count {
        let node = new_msg(producer, seq);
        // SAFETY: a fresh message, owned by the mailbox until reclaimed.
        if unsafe { mailbox.push(node) } == Ok(true) {
            signals += 1;
            efd.write();
        }
    }
    signals
}

/// Every message received exactly once, each producer's in push order.
fn assert_complete(received: &[(usize, usize)], producers: usize, per_producer: usize) {
    assert_eq!(received.len(), producers * per_producer, "{received:?}");
    let mut next = vec![0; producers];
    for &(producer, seq) in received {
        assert_eq!(
            seq, next[producer],
            "out of order or duplicated: {received:?}"
        );
        next[producer] += 1;
    }
}

fn take_all(mailbox: &Mailbox, into: &mut Vec<(usize, usize)>) {
    for node in mailbox.take_all() {
        // SAFETY: drained, so ours; `Drain` read its link already.
        into.push(unsafe { reclaim(node) });
    }
}

/// Producers push while the consumer drains twice; a last drain after they
/// finished must find the rest. A consumer that never sleeps is never
/// signalled.
fn queue(producers: usize, per_producer: usize) {
    check(3, move || {
        let mailbox = Arc::new(Mailbox::new());
        let efd = Arc::new(EventFd::new());
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let (mailbox, efd) = (Arc::clone(&mailbox), Arc::clone(&efd));
                thread::spawn(move || produce(&mailbox, &efd, p, per_producer))
            })
            .collect();
        let mut received = Vec::new();
        take_all(&mailbox, &mut received);
        take_all(&mailbox, &mut received);
        for handle in handles {
            assert_eq!(
                handle.join().unwrap(),
                0,
                "a signal to a loop that never slept"
            );
        }
        take_all(&mailbox, &mut received);
        assert_complete(&received, producers, per_producer);
        assert!(!mailbox.has_messages());
    });
}

#[test]
fn queue_three_producers_one_message_each() {
    queue(3, 1);
}

#[test]
fn queue_two_producers_two_messages_each() {
    queue(2, 2);
}

/// The loop's turn, as in the runtime: drain, and when nothing is left,
/// sleep in the kernel if the handshake allows it. The loop only stops once
/// it got every message, so a lost wake-up leaves it asleep for ever (a
/// deadlock to the model checker).
fn sleeping_consumer(producers: usize, per_producer: usize, preemptions: usize) {
    check(preemptions, move || {
        let mailbox = Arc::new(Mailbox::new());
        let efd = Arc::new(EventFd::new());
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let (mailbox, efd) = (Arc::clone(&mailbox), Arc::clone(&efd));
                thread::spawn(move || produce(&mailbox, &efd, p, per_producer))
            })
            .collect();
        let total = producers * per_producer;
        let mut received = Vec::new();
        let mut sleeps = 0;
        loop {
            take_all(&mailbox, &mut received);
            if received.len() == total {
                break;
            }
            sleeps += 1;
            if mailbox.prepare_to_sleep() {
                efd.read();
            }
            mailbox.woke_up();
        }
        let signals: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_complete(&received, producers, per_producer);
        // Each `prepare_to_sleep` raises `sleeping` once, and only the push
        // that lowers it again signals.
        assert!(signals <= sleeps, "{signals} signals for {sleeps} sleeps");
        assert_eq!(signals, efd.writes());
        assert!(!mailbox.has_messages());
    });
}

#[test]
fn sleep_handshake_two_producers() {
    sleeping_consumer(2, 1, 3);
}

#[test]
fn sleep_handshake_two_producers_two_messages_each() {
    sleeping_consumer(2, 2, 2);
}

#[test]
fn sleep_handshake_three_producers() {
    sleeping_consumer(3, 1, 1);
}

/// Pushes racing `close`: each is either drained by the consumer (a
/// `take_all` before `close`, or `close` itself) or refused — and then the
/// message is still the producer's. None is lost or seen twice.
fn close_race(producers: usize, per_producer: usize, drain_first: bool) {
    check(3, move || {
        let mailbox = Arc::new(Mailbox::new());
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let mailbox = Arc::clone(&mailbox);
                thread::spawn(move || {
                    let mut refused = Vec::new();
                    for seq in 0..per_producer {
                        let node = new_msg(p, seq);
                        // SAFETY: a fresh message, owned by the mailbox
                        // until reclaimed — unless refused.
                        match unsafe { mailbox.push(node) } {
                            Ok(signal) => assert!(!signal, "the loop never slept"),
                            // SAFETY: refused, so still ours.
                            Err(Closed) => refused.push(unsafe { reclaim(node) }),
                        }
                    }
                    refused
                })
            })
            .collect();
        let mut received = Vec::new();
        if drain_first {
            take_all(&mailbox, &mut received);
        }
        for node in mailbox.close() {
            // SAFETY: drained, so ours.
            received.push(unsafe { reclaim(node) });
        }
        let refused: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let mut all: Vec<_> = received.iter().chain(&refused).copied().collect();
        all.sort_unstable();
        assert_complete(&all, producers, per_producer);
        // Each producer's accepted messages came out in order, and once
        // refused, a producer is refused for good.
        let mut last_received = vec![None; producers];
        for &(p, seq) in &received {
            assert!(last_received[p] < Some(seq), "out of order: {received:?}");
            last_received[p] = Some(seq);
        }
        for &(p, seq) in &refused {
            assert!(
                last_received[p] < Some(seq),
                "accepted after refused: {received:?} / {refused:?}"
            );
        }
        assert!(!mailbox.has_messages());
        assert!(mailbox.take_all().next().is_none());
        let late = new_msg(9, 0);
        // SAFETY: a fresh message, refused.
        assert_eq!(unsafe { mailbox.push(late) }, Err(Closed));
        // SAFETY: refused, so still ours.
        unsafe { reclaim(late) };
    });
}

#[test]
fn close_races_pushes() {
    close_race(2, 2, false);
}

#[test]
fn close_after_a_drain_races_pushes() {
    close_race(2, 1, true);
}

/// Under Miri: three producers push 50 messages each to a consumer that
/// drains and sleeps as a loop does, then closes.
#[cfg(miri)]
#[test]
fn stress_three_producers_fifty_messages_each() {
    const PRODUCERS: usize = 3;
    const EACH: usize = 50;
    let mailbox = Arc::new(Mailbox::new());
    let efd = Arc::new(EventFd::new());
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (mailbox, efd) = (Arc::clone(&mailbox), Arc::clone(&efd));
            thread::spawn(move || {
                let mut signals = 0;
                for seq in 0..EACH {
                    let node = new_msg(p, seq);
                    // SAFETY: a fresh message, owned by the mailbox.
                    if unsafe { mailbox.push(node) }.unwrap() {
                        signals += 1;
                        efd.write();
                    }
                    if seq % 7 == 0 {
                        thread::yield_now();
                    }
                }
                signals
            })
        })
        .collect();
    let mut received = Vec::new();
    let mut sleeps = 0;
    while received.len() < PRODUCERS * EACH {
        let before = received.len();
        take_all(&mailbox, &mut received);
        if received.len() == before {
            sleeps += 1;
            if mailbox.prepare_to_sleep() {
                efd.read();
            }
            mailbox.woke_up();
        }
    }
    let signals: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(signals <= sleeps);
    assert_complete(&received, PRODUCERS, EACH);
    let late = new_msg(0, EACH);
    // SAFETY: a fresh message; the consumer closes the mailbox below.
    unsafe { mailbox.push(late) }.unwrap();
    let mut rest = Vec::new();
    for node in mailbox.close() {
        // SAFETY: drained, so ours.
        rest.push(unsafe { reclaim(node) });
    }
    assert_eq!(rest, [(0, EACH)]);
    let refused = new_msg(0, EACH + 1);
    // SAFETY: a fresh message, refused.
    assert_eq!(unsafe { mailbox.push(refused) }, Err(Closed));
    // SAFETY: refused, so still ours.
    unsafe { reclaim(refused) };
}
