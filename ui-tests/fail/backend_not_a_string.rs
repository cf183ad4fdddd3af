#[loom::main(backend = epoll)]
fn main() {}
