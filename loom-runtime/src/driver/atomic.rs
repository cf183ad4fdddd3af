//! The atomics `mailbox.rs` is written against. The model checker's copy of
//! this module (in `model/`) swaps in its own types; the runtime uses std's.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering, fence};
