#[loom::profile]
async fn fetch() {}

fn main() {
    let _ = fetch();
}
