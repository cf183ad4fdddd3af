#[loom::main(stack_size = "64KB")]
fn main() {}
