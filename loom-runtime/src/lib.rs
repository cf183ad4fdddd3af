//! The runtime behind the `loom` facade crate: stackful fibers on pooled,
//! guard-paged stacks, scheduled by one event loop per thread, doing I/O as
//! completions (io_uring) or readiness (epoll, kqueue) behind calls that
//! look blocking.
//!
//! Users depend on the `loom` facade crate, which re-exports this crate's
//! API; see its documentation for the tour. The map of this crate (the
//! data path and the invariants are in `docs/ARCHITECTURE.md`):
//!
//! - `fiber` — spawn/join/cancel, the control block at the top of each
//!   fiber's stack, the stack pool and its budget, the stack-overflow
//!   handler;
//! - `sched` — the run queue and the suspend/wake/yield moves;
//! - `time` — sleeping, on a hierarchical timer wheel;
//! - `rt` — the runtime builder, the event loops and the mailboxes between
//!   them;
//! - `op` — one struct per system call, with its io_uring encoding and its
//!   readiness path;
//! - `driver` — the backends (io_uring, and epoll/kqueue through mio) and
//!   `Driver::run`, which keeps an op alive until the kernel is done with
//!   it;
//! - `net`, `fs` — std-shaped sockets and files on top of `op`;
//! - `blocking` — the thread pool behind `unblock` and files on the poll
//!   backends;
//! - `sync` — fiber-aware locks and channels, local and cross-thread;
//! - `future` — `block_on`: any `Future` on the calling fiber, woken from
//!   any thread; `compat` — bridges to async runtimes (`compat::tokio`,
//!   feature `tokio`);
//! - `profiling` — Tracy zones (feature `tracy`), kept well nested across
//!   fiber switches;
//! - `list`, `sys` — the intrusive list and the thin libc helpers everything
//!   else stands on.
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

pub mod blocking;
pub mod compat;
mod context;
mod driver;
pub mod fiber;
pub mod fs;
pub mod future;
pub mod io;
mod list;
pub mod net;
mod op;
pub mod process;
pub mod profiling;
pub mod rt;
mod sched;
pub mod signal;
mod stack;
mod stats;
pub mod sync;
mod sys;
pub mod time;
mod wheel;

pub use blocking::unblock;
pub use fiber::{JoinHandle, spawn, yield_now};
pub use future::{block_on, try_block_on};
pub use rt::{Runtime, SendJoinHandle, broadcast, spawn_on};
