#[loom::main(stack_size = "2GiB")]
fn main() {}
