#[loom::profile]
#[allow(unused_imports)]
use std::io;

fn main() {}
