//! The runtime limits the macros check at compile time.
//!
//! A proc-macro crate cannot depend on the runtime it expands to, so these
//! mirror `loom-runtime`'s constants; `tests/macros.rs` asserts that the
//! two agree.

/// `loom::fiber::MIN_STACK_BYTES`.
pub(crate) const MIN_STACK_BYTES: usize = 16 * 1024;
/// `loom::fiber::MAX_STACK_BYTES`.
pub(crate) const MAX_STACK_BYTES: usize = 1 << 30;
/// Stack sizes must be whole pages of this size. The runtime rounds up to
/// the host's page (16 KiB on Apple silicon), so this is the portable floor.
pub(crate) const PAGE_BYTES: usize = 4096;
/// `loom::rt::MAX_THREADS`.
pub(crate) const MAX_THREADS: usize = 1024;
/// `loom::rt::DEFAULT_FIBERS`.
pub(crate) const DEFAULT_FIBERS: usize = 1024;
/// `loom::fiber::MAX_NAME_BYTES`.
pub(crate) const MAX_NAME_BYTES: usize = 46;

const _: () = assert!(MIN_STACK_BYTES.is_multiple_of(PAGE_BYTES));
const _: () = assert!(MAX_STACK_BYTES.is_multiple_of(PAGE_BYTES));
