#[loom::fiber]
extern "C" fn handle() {}

fn main() {
    let _ = handle;
}
