#[loom::main(max_fibers = 100)]
fn main() {}
