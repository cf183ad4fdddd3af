#[loom::main(pin = "yes")]
fn main() {}
