#[loom::main(fibers = 0)]
fn main() {}
