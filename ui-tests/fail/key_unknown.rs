#[loom::main(colour = "red")]
fn main() {}
