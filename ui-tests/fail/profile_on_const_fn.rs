#[loom::profile]
const fn limit() -> usize {
    16
}

fn main() {
    let _ = limit();
}
