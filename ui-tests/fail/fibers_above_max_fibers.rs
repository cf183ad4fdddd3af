#[loom::main(fibers = 64, max_fibers = 32)]
fn main() {}
