//! Procedural macros for loom.
//!
//! The attribute macros (`#[loom::main]`, `#[loom::fiber]`, `#[loom::test]`,
//! `#[loom::profile]`) arrive with the macros issue; until then this crate
//! only reserves its place in the workspace so the facade's dependency graph
//! does not change when they land. Everything a macro will do is already
//! reachable through `loom::Runtime::builder()` and `loom::fiber::Builder`.
#![deny(missing_docs)]
