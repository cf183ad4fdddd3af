//! Procedural macros for loom: `#[loom::main]`, `#[loom::fiber]`,
//! `#[loom::test]` and `#[loom::profile]`.
//!
//! Use them through the `loom` crate, which re-exports them and documents
//! them with examples. Each is thin sugar over the builder API
//! (`loom::rt::Builder`, `loom::fiber::Builder`): the expansion goes through
//! `::loom::__private` (or the path given with `crate = "..."`), keeps the
//! body as written, and on any error still emits the original item next to
//! the `compile_error!`s, so completion inside it keeps working.
#![deny(missing_docs)]

mod entry;
mod fiber;
mod item;
mod limits;
mod options;
mod profile;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

use crate::options::Macro;

/// Implemented by the `loom-macros` crate: depend on `loom` and write `#[loom::main]`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(args.into(), item.into(), Macro::Main).into()
}

/// Implemented by the `loom-macros` crate: depend on `loom` and write `#[loom::test]`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(args.into(), item.into(), Macro::Test).into()
}

/// Implemented by the `loom-macros` crate: depend on `loom` and write `#[loom::fiber]`.
#[proc_macro_attribute]
pub fn fiber(args: TokenStream, item: TokenStream) -> TokenStream {
    fiber::expand(args.into(), item.into()).into()
}

/// Implemented by the `loom-macros` crate: depend on `loom` and write `#[loom::profile]`.
#[proc_macro_attribute]
pub fn profile(args: TokenStream, item: TokenStream) -> TokenStream {
    profile::expand(args.into(), item.into()).into()
}
