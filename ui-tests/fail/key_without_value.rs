#[loom::main(threads)]
fn main() {}
