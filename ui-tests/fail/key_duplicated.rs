#[loom::main(threads = 1, fibers = 16, threads = 2)]
fn main() {}
