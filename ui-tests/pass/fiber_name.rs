// `name = "..."` names the fiber.
#[loom::fiber(name = "conn")]
fn handle() -> Option<String> {
    loom::fiber::current().name().map(str::to_owned)
}

#[loom::main(fibers = 16)]
fn main() {
    assert_eq!(handle().join().unwrap().as_deref(), Some("conn"));
}
