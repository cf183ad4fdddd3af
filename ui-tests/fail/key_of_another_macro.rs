#[loom::main(name = "server")]
fn main() {}
