#[loom::main]
fn main(_args: Vec<String>, _verbose: bool) {}
