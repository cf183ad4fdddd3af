#[loom::fiber]
const fn handle() {}

fn main() {
    let _ = handle;
}
