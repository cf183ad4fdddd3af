//! The runtime behind [loom](https://docs.rs/loom): stackful fibers on
//! pooled, guard-paged stacks, scheduled by one event loop per thread.
//!
//! Users depend on the `loom` facade crate, which re-exports this crate's
//! API; see its documentation for the tour. The map of this crate:
//!
//! - `fiber` — spawn/join/cancel, the control block at the top of each
//!   fiber's stack, the stack pool and the stack-overflow handler;
//! - `sched` — the run queue and the suspend/wake/yield moves;
//! - `time` — sleeping, on a hierarchical timer wheel;
//! - `rt` — the runtime builder, the event loops and the mailboxes between
//!   them;
//! - `sync` — fiber-aware locks and channels, local and cross-thread;
//! - `profiling` — Tracy zones (feature `tracy`), kept well nested across
//!   fiber switches.
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

pub mod blocking;
mod driver;
pub mod fiber;
pub mod fs;
mod list;
pub mod net;
mod op;
pub mod profiling;
pub mod rt;
mod sched;
pub mod sync;
mod sys;
pub mod time;

pub use blocking::unblock;
pub use fiber::{JoinHandle, spawn, yield_now};
pub use rt::{Runtime, SendJoinHandle, broadcast, spawn_on};
