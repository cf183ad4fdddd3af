#[loom::main(backend = "uring")]
fn main() {}
