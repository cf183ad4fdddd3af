#[loom::main]
fn main<T: Default>() {}
