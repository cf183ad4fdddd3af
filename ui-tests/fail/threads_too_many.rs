#[loom::main(threads = 2048)]
fn main() {}
