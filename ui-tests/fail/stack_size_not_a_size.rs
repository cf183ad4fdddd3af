#[loom::main(stack_size = "big")]
fn main() {}
