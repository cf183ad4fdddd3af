#[loom::main(profile = "yes")]
fn main() {}
