// `pin = true` pins loop i to the i-th CPU this process may use (Linux
// only: elsewhere the runtime refuses to start); `pin = false` is the
// default.
mod pinned {
    #[loom::main(pin = true, fibers = 16)]
    pub fn main() {}
}

#[loom::main(pin = false, fibers = 16)]
fn main() {
    if cfg!(target_os = "linux") {
        // `Runtime::run` cannot nest: start the second program on a thread.
        std::thread::spawn(pinned::main).join().unwrap();
    }
}
