#[loom::main]
async fn main() {}
