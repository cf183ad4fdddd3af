#[loom::fiber]
struct Handle;

fn main() {
    let _ = Handle;
}
