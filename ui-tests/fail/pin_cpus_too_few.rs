#[loom::main(threads = 2, pin_cpus = [0])]
fn main() {}
