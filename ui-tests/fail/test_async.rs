#[loom::test]
async fn echo() {}

fn main() {}
