//! # loom
//!
//! Servers written as plain, blocking-looking functions that run as
//! stackful fibers — thousands per core, on one event loop per core. A
//! blocking call suspends only the calling fiber; the loop runs the others.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = loom::Runtime::builder().build()?;
//! let total = rt.run(|| {
//!     let workers: Vec<_> = (1..=3u64)
//!         .map(|i| {
//!             loom::spawn(move || {
//!                 loom::time::sleep(Duration::from_millis(i)).unwrap();
//!                 i * 10
//!             })
//!         })
//!         .collect();
//!     workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 60);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## What runs where
//!
//! - [`Runtime::run`] runs its closure as the *main fiber*; when it
//!   returns, the remaining fibers are cancelled and the runtime ends.
//! - [`spawn`] starts a fiber on the current loop; fibers never move to
//!   another thread, so closures need not be `Send`.
//! - Blocking calls ([`JoinHandle::join`], [`time::sleep`], waiting for a
//!   free stack) suspend the fiber; a cancelled fiber's blocking calls
//!   return the cancellation error, `ECANCELED`
//!   ([`fiber::is_cancelled`]) — not `Interrupted`, which std's
//!   `read_exact`/`write_all` would retry forever.
//! - Blocking *std* calls (`std::thread::sleep`, `std::net`, a `std`
//!   mutex held across a switch) block the whole loop. Don't.
//! - Thread-locals are sound inside fibers, but a `RefCell` borrow must not
//!   be held across a blocking call.
//!
//! ## Macros
//!
//! Sugar over the builder API: [`macro@main`] runs `fn main` as the main
//! fiber of a runtime built from its options, [`macro@fiber`] makes
//! calling a function spawn it as a fiber, [`macro@test`] runs a test once
//! per I/O backend, and [`macro@profile`] opens a profiling zone in every
//! function it covers.
//!
//! ```
//! #[loom::fiber]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! #[loom::main(fibers = 64)]
//! fn main() {
//!     let squares: Vec<_> = (1..=3).map(square).collect();
//!     let total: u64 = squares.into_iter().map(|h| h.join().unwrap()).sum();
//!     assert_eq!(total, 14);
//! }
//! ```
//!
//! ## Features
//!
//! - `tracy`: profiling zones (from [`macro@profile`] and the `profile`
//!   option) are [Tracy](https://github.com/wolfpld/tracy) v0.14.1 zones;
//!   the client listens on localhost only, starts with the first runtime
//!   and sends its data when the process exits. A zone that spans a fiber
//!   switch is ended at the switch and begun again when the fiber resumes,
//!   so zones stay well nested on each loop thread's track.
//! - `tracy-fibers`: as `tracy`, but every fiber stack slot is a Tracy
//!   fiber track of its own and zones stay open across switches (dearer:
//!   see docs/PERFORMANCE.md).
//!
//! Without either, a zone is a zero-sized value and Tracy is not built.
//!
//! - `tokio`: [`compat`]`::tokio`, a bridge that runs tokio-bound futures
//!   (`reqwest`, `redis`, ...) on a shared background tokio runtime while
//!   only the calling fiber waits, and `rt::Builder::tokio_threads`.
//!
//! ## Calling async code
//!
//! [`block_on`] runs any runtime-agnostic `Future`
//! on the calling fiber — `futures`/`async-channel` channels,
//! `event-listener`, a [`SendJoinHandle`] — parking only that fiber while
//! it is pending; its waker works from any thread. [`try_block_on`] is the
//! same but returns `ECANCELED` when the fiber is cancelled. Futures that
//! need tokio's reactor or timers go through `compat::tokio::block_on`
//! (feature `tokio`). The other way round, a [`SendJoinHandle`] is a
//! `Future`: async code can `.await` a fiber.
//!
//! ## Limits
//!
//! Every resource is bounded and configured on [`rt::Builder`]: stacks
//! reserved up front (`fibers`), stacks in use at once (`max_fibers`, with
//! back-pressure on spawn), stack size, and the shutdown grace period. A
//! stack overflow hits a guard page and aborts with
//! `fiber '<name>' (#<id>) has overflowed its stack of <N> KiB`.
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

pub use loom_runtime::{
    JoinHandle, Runtime, SendJoinHandle, block_on, blocking, broadcast, compat, fiber, fs, future,
    io, net, process, rt, signal, spawn, spawn_on, sync, time, try_block_on, unblock, yield_now,
};

mod macro_support;

/// Runs `fn main` as the main fiber of a loom runtime.
///
/// ```
/// #[loom::main(threads = 1, stack_size = "64KiB", fibers = 64)]
/// fn main() -> std::io::Result<()> {
///     let worker = loom::spawn(|| 6 * 7);
///     assert_eq!(worker.join().unwrap(), 42);
///     Ok(())
/// }
/// ```
///
/// `main` may return `()` or any `Result<(), E: Debug>`; its attributes and
/// doc comments are kept. The macro is sugar for the builder API; the
/// example above is equivalent to:
///
/// ```
/// fn main() -> std::io::Result<()> {
///     let runtime = loom::rt::Builder::new().threads(1).stack_size(64 * 1024).fibers(64).build();
///     let runtime = runtime.unwrap_or_else(|e| {
///         eprintln!("Error: loom::main: cannot start the runtime: {e}");
///         std::process::exit(1)
///     });
///     runtime.run(move || -> std::io::Result<()> {
///         let worker = loom::spawn(|| 6 * 7);
///         assert_eq!(worker.join().unwrap(), 42);
///         Ok(())
///     })
/// }
/// ```
///
/// # Options
///
/// Each is a method of [`rt::Builder`]; all are optional.
///
/// | option | values | default |
/// |---|---|---|
/// | `backend` | `"auto"`, `"io_uring"`, `"epoll"`, `"kqueue"` | `"auto"` |
/// | `threads` | loops, one per thread: `1..=1024` | `1` |
/// | `pin` | `true` (loop *i* on the *i*-th allowed CPU), `false`, or a CPU index (one loop) | `false` |
/// | `pin_cpus` | one CPU per loop: `[0, 2]` | — |
/// | `stack_size` | bytes (`65536`) or `"64KiB"` / `"1MiB"`; a multiple of 4 KiB from 16 KiB to 1 GiB | 64 KiB |
/// | `fibers` | stacks reserved per loop at start-up, `>= 1` | 1024 |
/// | `max_fibers` | most stacks in use per loop, `>= fibers` | 65536 |
/// | `profile` | flag: a profiling zone around the body (see [`profile`](macro@profile)) | off |
/// | `crate` | the path loom is reachable at, in a string: `"my_framework::loom"` | `"::loom"` |
///
/// The options are checked at compile time: an unknown or repeated key, a
/// value of the wrong type, `threads = 0`, a stack size below 16 KiB or not a
/// whole number of 4 KiB pages, `fibers > max_fibers`, an unknown backend, or
/// a `pin_cpus` list with a length other than `threads` is an error on the
/// offending token. (The runtime rounds stack sizes up to the host's page,
/// 16 KiB on Apple silicon.) What only the host can tell — whether a backend
/// or a CPU is available — is checked when the runtime starts, and a failure
/// prints `Error: loom::main: cannot start the runtime: <why>` and exits
/// with status 1.
pub use loom_macros::main;

/// Makes calling a function spawn its body as a fiber on the current loop.
///
/// The call returns at once with a [`JoinHandle`] of the function's return
/// type; the body runs when the caller next blocks or yields.
///
/// ```
/// #[loom::fiber(stack_size = "32KiB")]
/// fn double(x: u64) -> u64 {
///     // The fiber is named after the function unless `name = ".."` says otherwise.
///     assert_eq!(loom::fiber::current().name(), Some("double"));
///     x * 2
/// }
///
/// struct Conn(u64);
///
/// impl Conn {
///     // A method takes `self` by value: the fiber owns it.
///     #[loom::fiber(name = "conn")]
///     fn serve(self) -> u64 {
///         self.0 + 1
///     }
/// }
///
/// #[loom::main]
/// fn main() {
///     let handle: loom::JoinHandle<u64> = double(21);
///     assert_eq!(handle.join().unwrap(), 42);
///     assert_eq!(Conn(1).serve().join().unwrap(), 2);
/// }
/// ```
///
/// `double(21)` is
/// `fiber::Builder::new().name("double").stack_size(32768).spawn(move || -> u64 { .. })`
/// ([`fiber::Builder`]), panicking if the spawn fails, as [`spawn`] does.
///
/// # Options
///
/// | option | values | default |
/// |---|---|---|
/// | `name` | the fiber's name, up to 46 bytes | the function's name |
/// | `stack_size` | as for [`main`](macro@main) | the runtime's |
/// | `profile` | flag: a profiling zone at the start of the fiber's body | off |
/// | `crate` | as for [`main`](macro@main) | `"::loom"` |
///
/// # What the function may take
///
/// A fiber outlives its caller, so everything it takes must be `'static`:
/// references and types with borrowed lifetimes (`&str`, `Foo<'a>`,
/// `Bar<'_>`), lifetime parameters, and `&self` / `&mut self` receivers are
/// compile errors that say what to take instead (`String`, `self`, an
/// `Rc<Self>`). Type parameters are allowed if they are `'static`
/// (`T: 'static`, not `Send`: a fiber never leaves its thread). The function
/// cannot be `async`, `const` or `extern`, nor return `impl Trait`. Each
/// argument is moved into the fiber whole and dropped when the fiber ends,
/// as a function's arguments are when it returns.
///
/// # Panics
///
/// Called outside a loom runtime: the message says to call it from inside
/// [`main`](macro@main), [`test`](macro@test) or [`Runtime::run`], and points at the call.
pub use loom_macros::fiber;

/// Runs a test as the main fiber of a fresh runtime, once per backend.
///
/// ```
/// #[loom::test]
/// fn sleeps() {
///     loom::time::sleep(std::time::Duration::from_millis(1)).unwrap();
/// }
///
/// #[loom::test(backend = "epoll", threads = 2)]
/// fn on_epoll() -> std::io::Result<()> {
///     assert_eq!(loom::rt::backend(), loom::rt::Backend::Epoll);
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// `backend = "all"`, the default, runs the body once on every backend
/// this host can run ([`rt::Backend::available`]: io_uring and epoll on a
/// recent Linux), each in a runtime of its own. A failure names the
/// backend: a panic becomes
/// ``loom::test `sleeps` failed on backend io_uring: <the panic message>``
/// (so `#[should_panic(expected = "..")]` still matches), an `Err` is
/// returned after printing which backend returned it. Naming one backend
/// runs only that one, and fails if the host lacks it. The other options
/// are those of [`main`](macro@main); other attributes (`#[ignore]`,
/// `#[should_panic]`) are kept. Writing `#[test]` as well is an error.
pub use loom_macros::test;

/// Opens a profiling zone at the start of every function it covers.
///
/// On a `fn`, an `impl` block (each method with a body) or an inline `mod`
/// (each function, `impl` block, trait default method and inline `mod` in
/// it), the first statement of each body becomes a zone named
/// `module::function` or `module::Type::method`. `const` and `async`
/// functions inside an `impl` or `mod` are left alone; on its own, either is
/// an error, as is any item without function bodies.
///
/// ```
/// #[loom::profile]
/// mod handlers {
///     pub fn parse(line: &str) -> usize {
///         line.len()
///     }
///
///     pub struct Stats(pub usize);
///
///     impl Stats {
///         pub fn add(&mut self, n: usize) {
///             self.0 += n; // zone "..::handlers::Stats::add"
///         }
///     }
/// }
///
/// let mut stats = handlers::Stats(0);
/// stats.add(handlers::parse("hello"));
/// assert_eq!(stats.0, 5);
/// ```
///
/// On a single method the zone is named `module::method`, as the attribute
/// cannot see the type; put it on the `impl` block for `module::Type::method`.
/// An item inside an instrumented `mod` or `impl` that carries its own
/// `#[loom::profile]` is left to it. Under `#[loom::fiber]`, write
/// `#[loom::fiber(profile)]` (or put `#[loom::profile]` above
/// `#[loom::fiber]`) so the zone is in the fiber rather than in the call
/// that spawns it.
///
/// The zone is the runtime's `zone!`: with loom's `tracy` feature it is a
/// Tracy zone, without it a zero-sized value and no code. The only option is
/// `crate = "..."`, as for [`main`](macro@main).
pub use loom_macros::profile;

#[doc(hidden)]
pub mod __private {
    //! What macro-generated code calls; not a public API.
    pub use loom_runtime::*;

    pub use crate::macro_support::{TestOutcome, run_main, run_test, spawn_fiber};
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
