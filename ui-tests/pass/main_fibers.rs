// `fibers = N`: stacks reserved per loop at start-up.
#[loom::main(fibers = 8)]
fn main() {
    let handles: Vec<_> = (0..8).map(|i| loom::spawn(move || i)).collect();
    let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 28);
}
