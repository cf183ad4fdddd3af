#[loom::main(threads = 2, pin = 1)]
fn main() {}
