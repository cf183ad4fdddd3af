#[loom::test(backend = "epol")]
fn echo() {}

fn main() {}
