//! Which signals a live `Signals` has taken, process-wide: a signal has at
//! most one receiver, because the kernel hands a pending signal to one
//! reader only, and two receivers racing for it would make which one sees
//! it a matter of luck.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::signal::SignalSet;

/// Bit `n - 1` set: signal `n` has a receiver.
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// A set of signals taken for one `Signals`; given back when dropped.
#[derive(Debug)]
pub(super) struct Claim(SignalSet);

impl Claim {
    /// Takes every signal of `set`, or none: a signal that already has a
    /// receiver is `AlreadyExists`, naming it.
    pub(super) fn take(set: SignalSet) -> io::Result<Claim> {
        let wanted = set.bits();
        let mut taken = TAKEN.load(Ordering::Relaxed);
        loop {
            let clash = taken & wanted;
            if clash != 0 {
                let signal = SignalSet::from_bits(clash)
                    .iter()
                    .next()
                    .expect("a non-empty clash names a signal");
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "loom::signal: signal {signal} already has a receiver (a live Signals); \
                         a signal has one receiver at a time"
                    ),
                ));
            }
            // AcqRel: a new receiver sees everything its predecessor did
            // before giving the signal back.
            match TAKEN.compare_exchange_weak(
                taken,
                taken | wanted,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Claim(set)),
                Err(now) => taken = now,
            }
        }
    }

    pub(super) fn set(&self) -> SignalSet {
        self.0
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        TAKEN.fetch_and(!self.0.bits(), Ordering::AcqRel);
    }
}

/// The signals some live `Signals` has taken: those a thread that spawns a
/// child must keep blocked meanwhile, lest it take one.
pub(crate) fn taken() -> SignalSet {
    SignalSet::from_bits(TAKEN.load(Ordering::Acquire))
}
