// `stack_size` on a fiber: an integer or a size string.
#[loom::fiber(stack_size = "256KiB")]
fn big() -> usize {
    std::hint::black_box([1u8; 64 * 1024]).len()
}

#[loom::fiber(stack_size = 16384)]
fn small() -> usize {
    1
}

#[loom::main(fibers = 16, stack_size = "16KiB")]
fn main() {
    assert_eq!(
        big().join().unwrap() + small().join().unwrap(),
        64 * 1024 + 1
    );
}
