#[loom::main]
fn start() {}

fn main() {}
