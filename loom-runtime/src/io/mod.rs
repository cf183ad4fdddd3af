//! Standard input and output (being written).
