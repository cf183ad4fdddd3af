#[loom::fiber(threads = 2)]
fn handle() {}

fn main() {
    let _ = handle;
}
