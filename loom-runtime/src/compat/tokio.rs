//! Running tokio-bound futures from fibers (cargo feature `tokio`).
//!
//! [`block_on`] spawns the future as a task of a **shared background tokio
//! runtime** and parks only the calling fiber until the task is done; the
//! task's completion wakes the fiber from tokio's threads through the
//! fiber's loop's mailbox ([`crate::try_block_on`]'s machinery). The
//! runtime is multi-threaded with its I/O reactor and timers enabled, is
//! created on first use, and lives until the process exits. Its threads
//! are named `loom-tokio` and, like every thread loom starts, block the
//! signals `loom::signal` may take over.
//!
//! It has [`DEFAULT_THREADS`] worker thread unless
//! [`Builder::tokio_threads`](crate::rt::Builder::tokio_threads) asks for
//! more: the bridge is meant for I/O-bound clients (HTTP, databases) whose
//! work is mostly waiting, and the cores belong to loom's loops.
//!
//! Use it for clients that need tokio's reactor or timers (`reqwest`,
//! `redis`, `tonic`, ...). Runtime-agnostic futures are cheaper on the
//! fiber itself with [`crate::block_on`]: no task, no thread hop.
//!
//! Not from async code: called on a tokio worker thread (inside a bridged
//! future, say), `block_on` blocks that thread; `.await` there instead.

use std::future::Future;
use std::io;
use std::panic;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::tokio::runtime::{Builder, Handle, Runtime};

use crate::sys::cancelled;

/// Worker threads of the background runtime unless
/// [`Builder::tokio_threads`](crate::rt::Builder::tokio_threads) says
/// otherwise.
pub const DEFAULT_THREADS: usize = 1;

/// The most worker threads the background runtime may be given.
pub const MAX_THREADS: usize = 256;

/// Worker threads asked for by a runtime builder; 0 for the default.
static REQUESTED_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The background runtime, or why it could not be started.
static RUNTIME: OnceLock<Result<(Runtime, usize), io::Error>> = OnceLock::new();

/// Records the worker-thread count of a loom runtime's builder, for the
/// background runtime's creation. Once that runtime runs, its count is
/// fixed; a different request is then only logged.
pub(crate) fn request_threads(threads: usize) {
    REQUESTED_THREADS.store(threads, Ordering::Relaxed);
    if let Some(Ok((_, running))) = RUNTIME.get()
        && *running != threads
    {
        log::warn!(
            "loom: the tokio bridge already runs with {running} worker threads; \
             tokio_threads({threads}) applies only before its first use"
        );
    }
}

fn runtime() -> io::Result<&'static Runtime> {
    let started = RUNTIME.get_or_init(|| {
        let threads = match REQUESTED_THREADS.load(Ordering::Relaxed) {
            0 => DEFAULT_THREADS,
            n => n,
        };
        Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("loom-tokio")
            // tokio's threads (workers and its blocking pool) are loom's
            // threads too: they must not take a `loom::signal` signal.
            .on_thread_start(crate::sys::signal::block_loom_thread_signals)
            .enable_all()
            .build()
            .map(|runtime| (runtime, threads))
    });
    match started {
        Ok((runtime, _)) => Ok(runtime),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("loom: cannot start the tokio bridge's runtime: {e}"),
        )),
    }
}

/// A handle to the bridge's background tokio runtime (started if it is not
/// yet), to spawn tasks that outlive a [`block_on`] call or to enter its
/// context.
///
/// # Errors
///
/// The error tokio gave when the runtime could not be started (on every
/// call: it is not retried).
///
/// # Examples
///
/// ```
/// let handle = loom::compat::tokio::handle()?;
/// assert!(handle.metrics().num_workers() >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn handle() -> io::Result<Handle> {
    runtime().map(|runtime| runtime.handle().clone())
}

/// Runs `future` as a task of the bridge's background tokio runtime and
/// waits for its output, suspending only the calling fiber (outside a
/// fiber, blocking the calling thread).
///
/// The future may use everything tokio offers (sockets, timers,
/// `tokio::spawn`); it runs on tokio's threads, hence `Send + 'static`.
/// Each call spawns one task, which allocates; see docs/PERFORMANCE.md for
/// what a call costs.
///
/// **Cancellation**: if the fiber is cancelled while it waits, the task
/// is aborted (tokio drops its future on one of its threads, once the
/// future is not mid-poll) and `block_on` returns the cancellation error; a fiber
/// already cancelled does not start the task at all. **Deadlines**: under
/// a call-tree deadline ([`crate::time::with_deadline`]) the task is
/// aborted when it passes, and `block_on` returns an error of kind
/// `TimedOut`.
///
/// # Errors
///
/// The cancellation error (`ECANCELED`, see
/// [`crate::fiber::is_cancelled`]) if the fiber is cancelled first,
/// `TimedOut` if its call-tree deadline passes first, or the error that
/// kept the background runtime from starting.
///
/// # Panics
///
/// If the future panics: the panic resumes on the calling fiber.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = loom::Runtime::builder().build()?;
/// let answer = rt.run(|| {
///     loom::compat::tokio::block_on(async {
///         tokio::time::sleep(Duration::from_millis(1)).await;
///         tokio::spawn(async { 6 * 7 }).await.unwrap()
///     })
/// })?;
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn block_on<F>(future: F) -> io::Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Refused before a task is spawned only to be aborted.
    crate::future::refuse_if_cancelled()?;
    let mut task = runtime()?.spawn(future);
    match crate::try_block_on(&mut task) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => match error.try_into_panic() {
            Ok(payload) => panic::resume_unwind(payload),
            // Only an abort cancels a task, and nobody else holds its
            // handle; tokio also cancels tasks of a runtime shutting down.
            Err(_) => Err(cancelled()),
        },
        Err(error) => {
            task.abort();
            Err(error)
        }
    }
}
