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
    JoinHandle, Runtime, SendJoinHandle, blocking, broadcast, fiber, fs, net, rt, spawn, spawn_on,
    sync, time, unblock, yield_now,
};

#[doc(hidden)]
pub mod __private {
    //! What macro-generated code calls; not a public API.
    pub use loom_runtime::*;
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
