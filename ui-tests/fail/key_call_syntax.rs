#[loom::main(threads(2))]
fn main() {}
