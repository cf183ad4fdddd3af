#[loom::main(pin_cpus = [0, 1, 2])]
fn main() {}
