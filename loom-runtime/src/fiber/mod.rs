//! Fibers: spawning, joining, cancelling, and asking who is running.
//!
//! A fiber is a closure running on its own pooled, guard-paged stack,
//! scheduled cooperatively by the event loop of the thread that spawned it.
//! It switches away only inside a blocking call (`join`, `sleep`, waiting
//! for a free stack, socket and file I/O, `loom::sync` waits, `unblock`)
//! or [`yield_now`]; between
//! those it runs uninterrupted, so thread-locals are sound inside fibers, but
//! a `RefCell` borrow must not be held across a blocking call.
//!
//! [`scope`] spawns fibers that may borrow from the caller's stack, as
//! [`std::thread::scope`] does for threads.
//!
//! # Examples
//!
//! ```
//! let rt = loom::Runtime::builder().build()?;
//! let sum = rt.run(|| {
//!     let handles: Vec<_> = (0..10u64).map(|i| loom::spawn(move || i * i)).collect();
//!     handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(sum, 285);
//! # Ok::<(), std::io::Error>(())
//! ```

mod join;
mod scope;

use std::io;

pub use self::join::JoinHandle;
pub use self::scope::{Scope, ScopedJoinHandle, scope};
use crate::rt::current::with_current;
use crate::stack::control::FiberName;
pub use crate::stack::control::{Fiber, FiberId, MAX_NAME_BYTES};
pub use crate::stack::pool::{MAX_STACK_BYTES, MIN_STACK_BYTES};

/// Spawns `f` as a fiber on the current loop and returns its handle.
///
/// The new fiber is queued behind the fibers already runnable; the caller
/// keeps running. `f` need not be `Send`: a fiber never leaves its loop's
/// thread. Spawning takes a stack from the pool and writes the fiber's
/// control block and closure onto it, so it does not allocate.
///
/// # Back-pressure
///
/// When `max_fibers` stacks are in use, the calling fiber waits until one is
/// released (FIFO among waiters). Use [`Builder::spawn`] to get that wait's
/// cancellation or a stack reservation failure as an `io::Error` instead.
///
/// # Panics
///
/// Outside a loom runtime, if the calling fiber is cancelled while waiting
/// for a stack, if no stack can be reserved, or if `T` is too large to be
/// kept on the fiber's stack.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let handle = loom::spawn(|| "hello from a fiber");
///     assert_eq!(handle.join().unwrap(), "hello from a fiber");
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match Builder::new().spawn(f) {
        Ok(handle) => handle,
        Err(e) => panic!("loom::spawn failed: {e}"),
    }
}

/// Fiber factory, to configure a fiber's name and stack size.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let handle = loom::fiber::Builder::new()
///         .name("conn")
///         .stack_size(16 * 1024)
///         .spawn(|| loom::fiber::current().name().map(str::to_owned))?;
///     assert_eq!(handle.join().unwrap().as_deref(), Some("conn"));
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    name: FiberName,
    stack_bytes: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder for an unnamed fiber with the runtime's default stack size.
    pub const fn new() -> Builder {
        Builder {
            name: FiberName::empty(),
            stack_bytes: None,
        }
    }

    /// Names the fiber (copied inline; at most [`MAX_NAME_BYTES`] bytes are
    /// kept). The name shows in panic messages, stack-overflow reports and
    /// [`current`].
    pub fn name(mut self, name: &str) -> Builder {
        self.name = FiberName::new(name);
        self
    }

    /// Sets the fiber's stack size in bytes, rounded up to whole pages. It
    /// must be within [`MIN_STACK_BYTES`]`..=`[`MAX_STACK_BYTES`]; stacks of
    /// each size are pooled separately.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_bytes = Some(bytes);
        self
    }

    /// Spawns the fiber (see [`spawn`]).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a stack size out of range or a return type too
    /// large for the stack; the cancellation error ([`is_cancelled`]) if the calling fiber is cancelled
    /// while waiting for a stack (see [`spawn`]'s back-pressure); the
    /// reservation's error if the pool cannot grow.
    ///
    /// # Panics
    ///
    /// Outside a loom runtime.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let stack_bytes = self
            .stack_bytes
            .map(crate::stack::pool::validate_stack_bytes)
            .transpose()?;
        let event_loop = crate::rt::current::current_rc("loom::spawn");
        let spawned = event_loop.spawn(self.name, stack_bytes, f)?;
        Ok(JoinHandle::new(event_loop, spawned))
    }

    /// Spawns the fiber in `scope` (see [`Scope::spawn`]), reporting
    /// failures as errors, like [`std::thread::Builder::spawn_scoped`].
    ///
    /// # Errors
    ///
    /// As [`Builder::spawn`].
    ///
    /// # Panics
    ///
    /// If called from a fiber of another loop than the scope's.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
    ///     let mut total = 0;
    ///     loom::fiber::scope(|s| -> std::io::Result<()> {
    ///         loom::fiber::Builder::new()
    ///             .name("adder")
    ///             .stack_size(32 * 1024)
    ///             .spawn_scoped(s, || total += 5)?;
    ///         Ok(())
    ///     })?;
    ///     assert_eq!(total, 5);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        let stack_bytes = self
            .stack_bytes
            .map(crate::stack::pool::validate_stack_bytes)
            .transpose()?;
        scope.spawn_with(self.name, stack_bytes, f)
    }
}

/// The fiber that is running.
///
/// # Panics
///
/// Outside a fiber; see [`try_current`].
#[track_caller]
pub fn current() -> Fiber {
    with_current("loom::fiber::current", |lp| {
        Fiber::of(lp.current_fiber("loom::fiber::current"))
    })
}

/// The fiber that is running, or `None` outside a loom runtime.
pub fn try_current() -> Option<Fiber> {
    if !crate::rt::current::in_runtime() {
        return None;
    }
    with_current("loom::fiber::try_current", |lp| {
        // SAFETY: the running fiber's block is valid while it runs.
        lp.sched.current().map(|f| Fiber::of(unsafe { f.as_ref() }))
    })
}

/// Puts the running fiber at the back of the run queue, letting every fiber
/// that is runnable now run first. It never blocks and is not a
/// cancellation point.
///
/// # Panics
///
/// Outside a fiber.
// Inlined so the switch sits in the caller's frame: a resumed fiber then
// returns through no stale frames, keeping the CPU's return-stack buffer in
// step with the loop's call (see docs/PERFORMANCE.md).
#[inline]
#[track_caller]
pub fn yield_now() {
    with_current("loom::yield_now", |lp| lp.sched.yield_now());
}

/// Whether `error` is the one blocking calls return once their fiber has
/// been cancelled ([`JoinHandle::cancel`], or shutdown): the OS error
/// `ECANCELED`, "Operation canceled".
///
/// Cancellation deliberately does not use `ErrorKind::Interrupted`: std's
/// `read_exact`, `write_all` and `io::copy` — and most blocking-style
/// crates — retry on `Interrupted`, which would spin a cancelled fiber
/// forever. With `ECANCELED` those loops stop, and `?` carries the error
/// up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let sleeper = loom::spawn(|| loom::time::sleep(Duration::from_secs(60)));
///     loom::yield_now();
///     sleeper.cancel();
///     let error = sleeper.join().unwrap().unwrap_err();
///     assert!(loom::fiber::is_cancelled(&error));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn is_cancelled(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::ECANCELED)
}
