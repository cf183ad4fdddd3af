#[loom::main(stack_size = -65536)]
fn main() {}
