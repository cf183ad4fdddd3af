//! Processes (being written).
