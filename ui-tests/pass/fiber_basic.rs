// Calling a #[loom::fiber] spawns it and returns `loom::JoinHandle<R>`; the
// fiber is named after the function.
#[loom::fiber]
fn add(a: u32, b: u32) -> u32 {
    assert_eq!(loom::fiber::current().name(), Some("add"));
    a + b
}

#[loom::fiber]
fn nothing() {}

#[loom::main(fibers = 16)]
fn main() {
    let sum: loom::JoinHandle<u32> = add(1, 2);
    let unit: loom::JoinHandle<()> = nothing();
    assert_eq!(sum.join().unwrap(), 3);
    unit.join().unwrap();
}
