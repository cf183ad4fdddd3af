#[loom::fiber]
fn handle<'a>(_name: &'a str) {}

fn main() {
    let _ = handle;
}
