// Visibility, doc comments, `unsafe fn` and other attributes are kept.
mod api {
    /// Spawns the work.
    #[loom::fiber]
    #[inline]
    pub fn work() -> u8 {
        1
    }

    /// # Safety
    ///
    /// None needed; the wrapper keeps `unsafe` for the caller.
    #[loom::fiber]
    pub(crate) unsafe fn risky() -> u8 {
        2
    }
}

#[loom::main(fibers = 16)]
fn main() {
    // SAFETY: `risky` has no requirements.
    let risky = unsafe { api::risky() };
    assert_eq!(api::work().join().unwrap() + risky.join().unwrap(), 3);
}
