//! Every macro expands cleanly under the strictest lints a user may set.
//! (trybuild does not run clippy; the same file is a `[[test]]` of this
//! package, so `cargo clippy --all-targets` lints it.)
#![deny(warnings, unused_qualifications, clippy::all)]

use std::io;

/// A fiber.
#[loom::fiber(name = "worker", stack_size = "32KiB", profile)]
fn worker(n: u64, (a, b): (u64, u64)) -> u64 {
    n + a + b
}

/// Something with methods.
struct Acc(u64);

#[loom::profile]
impl Acc {
    #[loom::fiber]
    fn finish(mut self, extra: u64) -> u64 {
        self.0 += extra;
        self.0
    }
}

#[loom::profile]
mod helpers {
    /// A helper.
    pub fn triple(n: u64) -> u64 {
        n * 3
    }
}

#[loom::profile]
fn one() -> u64 {
    1
}

#[loom::test(
    backend = "all",
    threads = 1,
    pin = false,
    stack_size = 65536,
    fibers = 4,
    max_fibers = 8,
    profile
)]
fn a_test() -> io::Result<()> {
    Ok(())
}

#[loom::main(
    backend = "auto",
    threads = 1,
    pin = false,
    stack_size = "64KiB",
    fibers = 16,
    max_fibers = 64,
    profile
)]
fn main() -> io::Result<()> {
    let sum = worker(one(), (2, 3)).join().unwrap();
    assert_eq!(Acc(sum).finish(helpers::triple(1)).join().unwrap(), 9);
    Ok(())
}
