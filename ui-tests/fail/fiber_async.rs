#[loom::fiber]
async fn handle() {}

fn main() {
    let _ = handle;
}
