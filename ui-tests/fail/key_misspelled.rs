#[loom::main(stak_size = "64KiB")]
fn main() {}
