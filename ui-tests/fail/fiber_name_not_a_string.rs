#[loom::fiber(name = conn)]
fn handle() {}

fn main() {
    let _ = handle;
}
