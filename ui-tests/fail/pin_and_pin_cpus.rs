#[loom::main(threads = 2, pin = true, pin_cpus = [0, 1])]
fn main() {}
