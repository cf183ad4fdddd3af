//! The runtime's mailbox (`loom-runtime/src/driver/mailbox.rs`) compiled
//! against the model checker's atomics, so that the tests in `tests/` check
//! exactly the code the runtime runs.
//!
//! Under Miri, and in this crate's own unit-test build (which runs the unit
//! tests inside `mailbox.rs`, outside any model), the atomics are std's.

/// The atomics `mailbox.rs` imports as `super::atomic`.
pub mod atomic {
    #[cfg(not(any(miri, test)))]
    pub use loom_model::sync::atomic::{AtomicBool, AtomicPtr, Ordering, fence};
    #[cfg(any(miri, test))]
    pub use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering, fence};
}

#[path = "../../loom-runtime/src/driver/mailbox.rs"]
pub mod mailbox;
