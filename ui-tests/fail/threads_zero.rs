#[loom::main(threads = 0)]
fn main() {}
