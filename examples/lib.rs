//! Holder package for loom's examples (`demo.rs`, ...); nothing to link.
