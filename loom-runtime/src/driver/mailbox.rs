//! A loop's mailbox: the lock-free multi-producer, single-consumer queue
//! through which other threads hand work to a loop, and the "sleeping"
//! handshake that makes a wake-up system call necessary only while the loop
//! is parked in the kernel.
//!
//! Producers push intrusive [`Node`]s with a compare-and-swap on `head` (a
//! Treiber stack). The loop takes the whole stack with one swap and walks it
//! in reverse, so messages come out in the order they were pushed. The loop
//! never pops single nodes, so there is no ABA problem.
//!
//! The handshake is Dekker's, with a `SeqCst` fence on each side: the loop
//! stores `sleeping = true`, fences, then looks at `head`; a producer swaps
//! `head`, fences, then looks at `sleeping`. At least one of them sees the
//! other's write, so a message is never left behind while the loop sleeps.
//! Of several producers racing to wake the same sleep, one wins the
//! `sleeping` swap and signals; the rest make no system call.
//!
//! This file depends only on `core`/`std` plus the `atomic` module next to
//! it, so the model checker and Miri can test exactly this code without the
//! rest of the runtime (see `model/` in the repository).

use std::ptr::{self, NonNull};

use super::atomic::{AtomicBool, AtomicPtr, Ordering, fence};

/// The link a message embeds (first, in a `#[repr(C)]` struct) to be queued.
#[derive(Debug)]
pub struct Node {
    next: AtomicPtr<Node>,
}

impl Node {
    /// An unqueued node.
    pub fn new() -> Node {
        Node {
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl Default for Node {
    fn default() -> Self {
        Node::new()
    }
}

/// `head` once the loop has stopped taking messages. Never dereferenced.
fn closed() -> *mut Node {
    ptr::without_provenance_mut(1)
}

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// See the module documentation. Aligned to its own cache lines so that
/// producers and the spinning loop do not also fight over whatever sits
/// next to it (e.g. the reference counts of the `Arc` holding it).
#[derive(Debug)]
#[repr(align(128))]
pub struct Mailbox {
    head: AtomicPtr<Node>,
    sleeping: AtomicBool,
}

impl Mailbox {
    /// An empty, open mailbox whose loop is awake.
    pub fn new() -> Mailbox {
        Mailbox {
            head: AtomicPtr::new(ptr::null_mut()),
            sleeping: AtomicBool::new(false),
        }
    }

    /// Queues `node`. Returns `Ok(true)` when the caller must wake the loop
    /// (it was parked and this push won the right to signal it), or
    /// `Err(Closed)` — with the node untouched and still the caller's — once
    /// the loop has [closed](Mailbox::close) the mailbox.
    ///
    /// # Safety
    /// `node` is valid, not queued, and stays valid and untouched by the
    /// caller until the consumer has taken it off (unless `Err` is returned).
    pub unsafe fn push(&self, node: NonNull<Node>) -> Result<bool, Closed> {
        let node = node.as_ptr();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if head == closed() {
                return Err(Closed);
            }
            // SAFETY: the node is valid and still only ours until the CAS
            // below publishes it (contract).
            unsafe { (*node).next.store(head, Ordering::Relaxed) };
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        fence(Ordering::SeqCst);
        // Load first: a busy loop keeps `sleeping` false, and a plain load
        // keeps the producer's fast path off the loop's cache line.
        Ok(self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed))
    }

    /// The loop is about to wait in the kernel. Returns `false` — and stays
    /// awake — if messages are already waiting.
    pub fn prepare_to_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.head.load(Ordering::Relaxed).is_null() {
            true
        } else {
            self.sleeping.store(false, Ordering::Relaxed);
            false
        }
    }

    /// The loop is back from its wait (woken or not).
    pub fn woke_up(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Whether messages are waiting. A hint: more may arrive right after.
    pub fn has_messages(&self) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        !head.is_null() && head != closed()
    }

    /// Takes every queued message, oldest first. Consumer only.
    pub fn take_all(&self) -> Drain {
        if !self.has_messages() {
            return Drain { next: None };
        }
        let head = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        Drain::reversed(head)
    }

    /// Refuses all further pushes and takes what was queued, oldest first.
    /// Consumer only; call once, when the loop stops.
    pub fn close(&self) -> Drain {
        let head = self.head.swap(closed(), Ordering::Acquire);
        debug_assert!(head != closed(), "a mailbox is closed once");
        Drain::reversed(head)
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox::new()
    }
}

/// The messages taken by one [`Mailbox::take_all`], oldest first.
#[derive(Debug)]
pub struct Drain {
    next: Option<NonNull<Node>>,
}

impl Drain {
    /// Reverses the newest-first chain starting at `head` in place.
    fn reversed(mut head: *mut Node) -> Drain {
        let mut reversed: *mut Node = ptr::null_mut();
        while let Some(node) = NonNull::new(head) {
            // SAFETY: nodes on the chain were published by `push` (Release,
            // paired with the consumer's Acquire swap) and stay valid until
            // the consumer hands them on; only the consumer touches them now.
            unsafe {
                head = node.as_ref().next.load(Ordering::Relaxed);
                node.as_ref().next.store(reversed, Ordering::Relaxed);
            }
            reversed = node.as_ptr();
        }
        Drain {
            next: NonNull::new(reversed),
        }
    }
}

impl Iterator for Drain {
    type Item = NonNull<Node>;

    /// The next message. Its `next` link is read before the node is
    /// returned, so the caller may hand the node on (and its owner reuse
    /// it) at once.
    fn next(&mut self) -> Option<NonNull<Node>> {
        let node = self.next?;
        // SAFETY: see `reversed`; the node is valid until returned.
        self.next = NonNull::new(unsafe { node.as_ref() }.next.load(Ordering::Relaxed));
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_out_in_push_order() {
        let mailbox = Mailbox::new();
        let nodes: Vec<Node> = (0..4).map(|_| Node::new()).collect();
        for node in &nodes {
            // SAFETY: each node outlives the mailbox's use of it.
            assert_eq!(unsafe { mailbox.push(NonNull::from(node)) }, Ok(false));
        }
        let taken: Vec<_> = mailbox.take_all().collect();
        let expected: Vec<_> = nodes.iter().map(NonNull::from).collect();
        assert_eq!(taken, expected);
        assert_eq!(mailbox.take_all().count(), 0);
    }

    #[test]
    fn only_a_push_onto_a_sleeping_loop_asks_for_a_signal() {
        let mailbox = Mailbox::new();
        let (a, b) = (Node::new(), Node::new());
        assert!(mailbox.prepare_to_sleep());
        // SAFETY: the nodes outlive the mailbox's use of them.
        unsafe {
            assert_eq!(mailbox.push(NonNull::from(&a)), Ok(true));
            assert_eq!(mailbox.push(NonNull::from(&b)), Ok(false));
        }
        assert!(!mailbox.prepare_to_sleep(), "messages are waiting");
        assert_eq!(mailbox.take_all().count(), 2);
    }

    #[test]
    fn a_closed_mailbox_refuses_pushes() {
        let mailbox = Mailbox::new();
        let (a, b) = (Node::new(), Node::new());
        // SAFETY: the nodes outlive the mailbox's use of them.
        unsafe {
            mailbox.push(NonNull::from(&a)).unwrap();
            assert_eq!(mailbox.close().count(), 1);
            assert_eq!(mailbox.push(NonNull::from(&b)), Err(Closed));
        }
        assert!(!mailbox.has_messages());
    }
}
