// `threads = N`: N loops on N threads; main runs on loop 0.
#[loom::main(threads = 2, fibers = 16)]
fn main() {
    assert_eq!(loom::rt::loop_count(), 2);
    assert_eq!(loom::rt::loop_index(), 0);
    let other = loom::spawn_on(1, loom::rt::loop_index);
    assert_eq!(other.join().unwrap(), 1);
}
