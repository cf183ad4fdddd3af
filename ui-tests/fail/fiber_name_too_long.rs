#[loom::fiber(name = "a fiber name that is longer than forty-six bytes")]
fn handle() {}

fn main() {
    let _ = handle;
}
