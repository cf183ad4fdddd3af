#[loom::test]
#[test]
fn echo() {}

fn main() {}
