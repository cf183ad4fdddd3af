#[loom::main(stack_size = 20000)]
fn main() {}
