#[loom::profile]
unsafe extern "C" {
    fn abs(n: i32) -> i32;
}

fn main() {}
