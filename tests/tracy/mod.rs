//! A fake Tracy viewer for the tests of the `tracy` features.

pub mod listener;
pub mod viewer;
