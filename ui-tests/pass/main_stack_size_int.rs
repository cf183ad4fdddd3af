// `stack_size = <bytes>`, a multiple of 4096 from 16 KiB.
#[loom::main(stack_size = 32768, fibers = 16)]
fn main() {
    let used = loom::spawn(|| std::hint::black_box([0u8; 8 * 1024]).len());
    assert_eq!(used.join().unwrap(), 8 * 1024);
}
