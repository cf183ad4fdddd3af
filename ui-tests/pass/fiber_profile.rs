// `profile` on a fiber: the zone opens inside the fiber, not in the caller.
#[loom::fiber(profile)]
fn traced(n: u32) -> u32 {
    n + 1
}

#[loom::fiber(profile = false)]
fn untraced() {}

#[loom::main(fibers = 16)]
fn main() {
    assert_eq!(traced(1).join().unwrap(), 2);
    untraced().join().unwrap();
}
