//! A fiber's memory, the runtime's internals below the public `fiber`
//! module: the pool of guard-paged stacks (`pool.rs`), how its chunks are
//! mapped and guarded (`reserve.rs`) and how many the host lets the
//! process map (`budget.rs`); the control block at the top
//! of each stack (`control.rs`) and where the fiber's result and usable
//! stack go under it (`layout.rs`); the table of reservations (`chunks.rs`)
//! that the stack-overflow handler (`overflow.rs`) searches.

pub(crate) mod budget;
mod chunks;
pub(crate) mod control;
pub(crate) mod layout;
pub(crate) mod overflow;
pub(crate) mod pool;
pub(crate) mod reserve;
