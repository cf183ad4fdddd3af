//! Standard input and output that park only the calling fiber (being
//! written), and the fd type behind them, child pipes, signals and
//! process waits.

pub(crate) mod fd;
