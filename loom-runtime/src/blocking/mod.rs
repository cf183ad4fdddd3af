//! A small pool of OS threads for work with no kernel-async path: host-name
//! resolution, files on the poll backends, and user code passed to
//! [`unblock`].
//!
//! A job lives in the calling fiber's frame: the closure, a slot for its
//! result and a `FiberWake` message. The fiber queues a pointer to it and
//! suspends; a worker runs the closure, stores the result and hands the
//! message to the loop's mailbox, which wakes the loop only
//! if it is parked. The fiber leaves the job's frame only once the job is
//! done or was taken back off the queue before any worker started it — the
//! same rule as for kernel ops (invariant 1, docs/ARCHITECTURE.md), so the closure may
//! even borrow from the fiber's stack internally.
//!
//! Limits: at most [`MAX_THREADS`] workers in the process, started on
//! demand and stopped after [`IDLE_TIMEOUT`] without work. Jobs beyond
//! that wait in a FIFO queue.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use crate::driver::remote::{FiberWake, Remote};
use crate::rt::event_loop::EventLoop;
use crate::stats::WaitKind;
use crate::sys::cancelled;

mod unblock;

pub use unblock::unblock;

/// Most worker threads the pool runs at once, process-wide.
pub const MAX_THREADS: usize = 16;
/// How long an idle worker waits for work before it exits.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `f` on the pool and waits for it; the fiber-internal form of
/// [`unblock`], which may borrow: the caller's frame outlives the job.
pub(crate) fn run<F, T>(lp: &EventLoop, f: F) -> io::Result<thread::Result<T>>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let me = lp.current_fiber("loom::unblock");
    if me.cancelled.get() {
        return Err(lp.refuse_cancelled());
    }
    let fiber = lp
        .sched
        .current()
        .expect("current_fiber checked we are in one");
    let job = Job {
        header: JobHeader {
            completion: FiberWake::new(fiber),
            run: run_job::<F, T>,
        },
        f: Cell::new(Some(f)),
        result: Cell::new(None),
    };
    let header = NonNull::from(&job.header);
    pool().submit(header, lp.driver.remote())?;
    lp.remote_wait_started();
    let mut taken_back = false;
    while !job.header.completion.is_delivered() {
        lp.sched.suspend(WaitKind::Blocking);
        if !taken_back && !job.header.completion.is_delivered() && me.cancelled.get() {
            taken_back = true;
            if pool().take_back(header) {
                lp.remote_wait_ended();
                return Err(cancelled());
            }
        }
    }
    lp.remote_wait_ended();
    Ok(job
        .result
        .into_inner()
        .expect("a finished job stored its result"))
}

/// What a worker sees of a job, whatever its closure type.
#[repr(C)]
struct JobHeader {
    completion: FiberWake,
    run: unsafe fn(NonNull<JobHeader>),
}

/// A job in its fiber's frame; `header` first so a header pointer is a job
/// pointer.
#[repr(C)]
struct Job<F, T> {
    header: JobHeader,
    f: Cell<Option<F>>,
    result: Cell<Option<thread::Result<T>>>,
}

/// # Safety
/// `header` is the header of a live `Job<F, T>` that only this worker
/// touches until it hands the completion back.
unsafe fn run_job<F: FnOnce() -> T, T>(header: NonNull<JobHeader>) {
    // SAFETY: `Job` is repr(C) with the header first (contract: it is a
    // Job<F, T>), and the fiber does not touch it while a worker runs it.
    let job = unsafe { header.cast::<Job<F, T>>().as_ref() };
    let f = job.f.take().expect("a job runs once");
    job.result
        .set(Some(panic::catch_unwind(AssertUnwindSafe(f))));
}

/// The pool's threads, how many of them are idle, and the jobs queued for
/// them, read under its lock (for `loom::rt::metrics`).
pub(crate) fn load() -> (usize, usize, usize) {
    let state = pool().lock();
    (state.threads, state.idle, state.queue.len())
}

/// A queued job and the loop to hand it back to.
struct Queued {
    header: NonNull<JobHeader>,
    remote: Arc<Remote>,
}

// SAFETY: a queued job is touched by exactly one thread at a time: its
// fiber's loop until queued, then the one worker that dequeues it, then the
// loop again after the hand-back; closures and results are `Send`.
unsafe impl Send for Queued {}

struct PoolState {
    queue: VecDeque<Queued>,
    threads: usize,
    idle: usize,
}

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
        }),
        work: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Workers catch panics from jobs, so a poisoned lock still holds a
        // consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(&'static self, header: NonNull<JobHeader>, remote: &Arc<Remote>) -> io::Result<()> {
        let mut state = self.lock();
        state.queue.push_back(Queued {
            header,
            remote: Arc::clone(remote),
        });
        if state.queue.len() <= state.idle {
            self.work.notify_one();
            return Ok(());
        }
        if state.threads >= MAX_THREADS {
            return Ok(()); // a busy worker will get to it
        }
        state.threads += 1;
        let spawned = thread::Builder::new()
            .name("loom-blocking".into())
            .spawn(move || {
                // A worker never takes a signal meant for a `Signals`.
                crate::sys::signal::block_loom_thread_signals();
                self.work_loop()
            });
        if let Err(e) = spawned {
            state.threads -= 1;
            if state.threads == 0 {
                // Nobody would ever run it: take it back and report.
                state.queue.retain(|queued| queued.header != header);
                return Err(e);
            }
            log::warn!("loom: cannot start another blocking-pool thread: {e}");
        }
        Ok(())
    }

    /// Removes a job nobody has started. Returns `false` if a worker has it.
    fn take_back(&self, header: NonNull<JobHeader>) -> bool {
        let mut state = self.lock();
        let before = state.queue.len();
        state.queue.retain(|queued| queued.header != header);
        state.queue.len() != before
    }

    fn work_loop(&self) {
        let mut state = self.lock();
        loop {
            if let Some(Queued { header, remote }) = state.queue.pop_front() {
                drop(state);
                // SAFETY: the queue held the only reference; the job's fiber
                // waits for its completion, so the job is live.
                unsafe {
                    let run = header.as_ref().run;
                    run(header);
                    let completion = header.as_ref().completion.envelope();
                    if remote.send(completion).is_err() {
                        // The loop stops only after its fibers finished, and
                        // this job's fiber waits for this very message.
                        log::error!("loom: a blocking job finished for a loop that had stopped");
                    }
                }
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, IDLE_TIMEOUT)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}
