// The expansion goes through the `crate` path: a wrong one fails there.
#[loom::main(crate = "nowhere")]
fn main() {}
