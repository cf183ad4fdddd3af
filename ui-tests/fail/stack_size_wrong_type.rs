#[loom::main(stack_size = 1.5)]
fn main() {}
