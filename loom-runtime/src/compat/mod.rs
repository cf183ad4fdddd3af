//! Bridges to async runtimes, for clients that are tied to one.
//!
//! [`crate::block_on`] runs any runtime-agnostic future on the calling
//! fiber. A future that needs a particular runtime's reactor or timers — a
//! `reqwest` request, a `redis` connection, anything built on tokio's
//! sockets or `tokio::time` — must run inside that runtime instead; the
//! bridges here do that and park only the calling fiber until it is done.
//!
//! - `tokio` (cargo feature `tokio`): `tokio::block_on` runs a future as
//!   a task of a shared background tokio runtime.
//!
//! Without any of these features this module is empty.

#[cfg(feature = "tokio")]
pub mod tokio;
