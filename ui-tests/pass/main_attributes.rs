// Doc comments, outer and inner attributes stay on the emitted `main`.
#![deny(unused_variables)]

/// The program.
#[allow(clippy::let_unit_value)]
#[loom::main(fibers = 16)]
fn main() {
    #![allow(unused_variables)]
    let unused = ();
}
