#[loom::main(backend = "all")]
fn main() {}
