// `main` returning `()`; the body runs as the main fiber.
#[loom::main]
fn main() {
    assert_eq!(loom::fiber::current().name(), Some("main"));
    assert_eq!(loom::spawn(|| 6 * 7).join().unwrap(), 42);
}
