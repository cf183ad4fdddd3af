//! `raw-io_uring`: the echo server on a bare io_uring (the `io-uring`
//! crate), no runtime.
//!
//! One ring (`SQ_ENTRIES` = 4 096, `CQ_ENTRIES` = 16 384) on one thread. A
//! multishot accept (re-armed when the kernel ends it; single-shot accepts
//! on kernels before 5.19, which reject it) hands over each connection,
//! which gets a slab slot with its [`SERVER_BUF`] buffer and then cycles:
//! recv into the buffer → send what was read (a short send resubmits the
//! rest) → recv again. Exactly one operation per connection is in flight
//! at any time, so a connection (its fd and buffer) is dropped only once
//! its last operation has completed — on EOF or any error. An SQE's
//! `user_data` is the connection's slot number shifted left by two bits,
//! plus the operation kind.
//!
//! Submission is batched: every SQE prepared while handling one batch of
//! completions goes to the kernel in the single `submit_and_wait(1)` that
//! also waits for the next batch — one `io_uring_enter` per loop turn.
//! Should the SQ fill up mid-batch, it is submitted early.
//!
//! The ring is set up with the task-running flags loom uses
//! (`SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN` where the kernel has
//! them), so the floor pays for completions the way loom does. Otherwise
//! plain: no registered (fixed) files or buffers, no provided buffer
//! rings, no `SQPOLL`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::squeue::Entry;
use io_uring::types::Fd;
use io_uring::{IoUring, SubmissionQueue, Submitter, cqueue, opcode};

use super::super::SERVER_BUF;
use super::super::servers::Report;
use super::{Slab, listener, set_nodelay};

/// Submission-queue entries.
const SQ_ENTRIES: u32 = 4096;
/// Completion-queue entries. At most one completion per connection (plus
/// the accept's) can be outstanding, so below 16 383 connections the CQ
/// cannot overflow.
const CQ_ENTRIES: u32 = 4 * SQ_ENTRIES;

/// Operation kinds, the low two bits of `user_data`.
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const KIND_BITS: u32 = 2;

fn user_data(index: usize, kind: u64) -> u64 {
    ((index as u64) << KIND_BITS) | kind
}

/// One connection: its socket and its buffer, `len` bytes of which were
/// read and `sent` of those echoed so far.
#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    buf: Box<[u8]>,
    len: usize,
    sent: usize,
}

impl Conn {
    fn recv(&mut self, index: usize) -> Entry {
        opcode::Recv::new(
            Fd(self.fd.as_raw_fd()),
            self.buf.as_mut_ptr(),
            SERVER_BUF as u32,
        )
        .build()
        .user_data(user_data(index, RECV))
    }

    fn send(&self, index: usize) -> Entry {
        let rest = &self.buf[self.sent..self.len];
        opcode::Send::new(Fd(self.fd.as_raw_fd()), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(index, SEND))
    }
}

/// The submission side: the SQ, and the entries that did not fit in it
/// even after an early submit (pushed at the start of the next turn).
struct Queue<'a> {
    submitter: &'a Submitter<'a>,
    sq: SubmissionQueue<'a>,
    overflow: Vec<Entry>,
}

impl Queue<'_> {
    /// Queues `entry`; submits early if the SQ is full.
    fn push(&mut self, entry: Entry) -> io::Result<()> {
        if self.try_push(&entry) {
            return Ok(());
        }
        self.submit()?;
        if !self.try_push(&entry) {
            self.overflow.push(entry);
        }
        Ok(())
    }

    fn try_push(&mut self, entry: &Entry) -> bool {
        // SAFETY: every entry points at a buffer and an fd owned by a
        // `Conn` in the slab (or the listener, which outlives the loop); a
        // `Conn` is dropped only after its single in-flight operation
        // completed, so both stay valid until the kernel is done with them.
        unsafe { self.sq.push(entry) }.is_ok()
    }

    /// Hands the queued entries to the kernel without waiting.
    fn submit(&mut self) -> io::Result<()> {
        self.sq.sync();
        let result = self.submitter.submit();
        self.sq.sync();
        match result {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves entries left over from the last turn into the SQ.
    fn refill(&mut self) -> io::Result<()> {
        while let Some(entry) = self.overflow.pop() {
            if !self.try_push(&entry) {
                self.overflow.push(entry);
                self.submit()?;
                if self.sq.is_full() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The accept side and the connections.
struct Server {
    listener: RawFd,
    conns: Slab<Conn>,
    /// Multishot accept, until the kernel rejects it.
    multishot: bool,
    /// Accept errors so far (only the first is printed).
    accept_errors: u64,
}

impl Server {
    fn accept(&self) -> Entry {
        let fd = Fd(self.listener);
        let entry = if self.multishot {
            opcode::AcceptMulti::new(fd)
                .flags(libc::SOCK_CLOEXEC)
                .build()
        } else {
            opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
        };
        entry.user_data(user_data(0, ACCEPT))
    }

    /// Handles one completion, queueing what follows from it.
    fn complete(&mut self, q: &mut Queue<'_>, data: u64, res: i32, flags: u32) -> io::Result<()> {
        let index = (data >> KIND_BITS) as usize;
        match data & ((1 << KIND_BITS) - 1) {
            ACCEPT => self.accepted(q, res, flags),
            RECV => {
                let Some(conn) = self.conns.get_mut(index) else {
                    return Ok(());
                };
                match res {
                    n if n > 0 => {
                        conn.len = n as usize;
                        conn.sent = 0;
                        q.push(conn.send(index))
                    }
                    n if n == -libc::EINTR || n == -libc::EAGAIN => q.push(conn.recv(index)),
                    // EOF or an error (reset): the connection is done.
                    _ => {
                        self.conns.remove(index);
                        Ok(())
                    }
                }
            }
            SEND => {
                let Some(conn) = self.conns.get_mut(index) else {
                    return Ok(());
                };
                match res {
                    n if n > 0 => {
                        conn.sent += n as usize;
                        if conn.sent < conn.len {
                            q.push(conn.send(index))
                        } else {
                            q.push(conn.recv(index))
                        }
                    }
                    n if n == -libc::EINTR || n == -libc::EAGAIN => q.push(conn.send(index)),
                    _ => {
                        self.conns.remove(index);
                        Ok(())
                    }
                }
            }
            kind => Err(io::Error::other(format!("unknown completion kind {kind}"))),
        }
    }

    fn accepted(&mut self, q: &mut Queue<'_>, res: i32, flags: u32) -> io::Result<()> {
        if res >= 0 {
            // SAFETY: a successful accept returns a new fd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            // A socket that cannot take the option is about to fail anyway.
            let _ = set_nodelay(fd.as_raw_fd());
            let index = self.conns.insert(Conn {
                fd,
                buf: vec![0; SERVER_BUF].into_boxed_slice(),
                len: 0,
                sent: 0,
            });
            let conn = self.conns.get_mut(index).expect("just inserted");
            q.push(conn.recv(index))?;
        } else if res == -libc::EINVAL && self.multishot && self.conns.slots.is_empty() {
            // Multishot accept needs Linux 5.19.
            self.multishot = false;
        } else {
            self.accept_errors += 1;
            if self.accept_errors == 1 {
                eprintln!(
                    "raw-io_uring: accept failed: {}",
                    io::Error::from_raw_os_error(-res)
                );
            }
        }
        if !self.multishot || !cqueue::more(flags) {
            q.push(self.accept())?;
        }
        Ok(())
    }
}

/// The ring, with the task-running flags the kernel accepts: completions
/// are posted only when this thread enters the kernel (`DEFER_TASKRUN`,
/// Linux 6.1, which needs `SINGLE_ISSUER`), else without interrupting it
/// (`COOP_TASKRUN`, 5.19), else plain — the flags loom itself tries.
fn build_ring() -> io::Result<IoUring> {
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_coop_taskrun();
        },
        |b| {
            b.setup_coop_taskrun();
        },
        |_| {},
    ];
    let mut last = None;
    for flags in attempts {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(CQ_ENTRIES);
        flags(&mut builder);
        match builder.build(SQ_ENTRIES) {
            Ok(ring) => return Ok(ring),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}

/// Runs the `raw-io_uring` echo server forever (see the module docs).
///
/// # Errors
///
/// Failing to bind or to set up the ring; a failing `io_uring_enter`.
pub fn serve(report: Report) -> io::Result<()> {
    let listener = listener()?;
    let mut ring = build_ring()?;
    let (submitter, sq, mut cq) = ring.split();
    let mut q = Queue {
        submitter: &submitter,
        sq,
        overflow: Vec::new(),
    };
    let mut server = Server {
        listener: listener.as_raw_fd(),
        conns: Slab::new(),
        multishot: true,
        accept_errors: 0,
    };
    q.push(server.accept())?;
    report(listener.local_addr()?.port());
    let mut batch: Vec<(u64, i32, u32)> = Vec::with_capacity(CQ_ENTRIES as usize);
    loop {
        q.refill()?;
        q.sq.sync();
        match submitter.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        q.sq.sync();
        // Copy the batch out and release the CQ slots before handling it.
        cq.sync();
        batch.extend((&mut cq).map(|c| (c.user_data(), c.result(), c.flags())));
        cq.sync();
        for (data, res, flags) in batch.drain(..) {
            server.complete(&mut q, data, res, flags)?;
        }
    }
}
