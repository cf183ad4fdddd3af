#[loom::main(stack_size = "8KiB")]
fn main() {}
