//! trybuild cases for loom's macros: `fail/*.rs` with the `.stderr` each
//! must produce, and `pass/*.rs`, which must compile and run. The driver is
//! `tests/ui.rs`, part of `cargo test`.
