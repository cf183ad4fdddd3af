#[loom::test]
fn echo(_port: u16) {}

fn main() {}
