#[loom::main(crate = "my loom")]
fn main() {}
