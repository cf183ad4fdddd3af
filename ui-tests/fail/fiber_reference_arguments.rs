#[loom::fiber]
fn handle(_name: &str, _bytes: &[u8], _list: &mut Vec<u32>) {}

fn main() {
    let _ = handle;
}
