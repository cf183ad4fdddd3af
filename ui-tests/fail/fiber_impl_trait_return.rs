#[loom::fiber]
fn handle() -> impl std::fmt::Debug {
    1
}

fn main() {
    let _ = handle;
}
