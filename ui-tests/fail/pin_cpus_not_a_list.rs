#[loom::main(pin_cpus = 0)]
fn main() {}
