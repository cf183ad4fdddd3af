#[loom::fiber(stack_size = 4096)]
fn handle() {}

fn main() {
    let _ = handle;
}
