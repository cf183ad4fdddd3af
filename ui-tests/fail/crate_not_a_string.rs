#[loom::main(crate = loom)]
fn main() {}
