//! Signals (being written).
