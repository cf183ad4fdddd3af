// `backend = "io_uring"`: run only where the host has it (a kernel or a
// seccomp filter may refuse it, and the runtime would fail to start).
mod on_uring {
    #[loom::main(backend = "io_uring", fibers = 16)]
    pub fn main() {
        assert_eq!(loom::rt::backend(), loom::rt::Backend::IoUring);
    }
}

// Type-checked everywhere, run nowhere but on macOS and the BSDs.
#[allow(dead_code)]
mod on_kqueue {
    #[loom::main(backend = "kqueue", fibers = 16)]
    pub fn main() {}
}

fn main() {
    if loom::rt::Backend::available().contains(&loom::rt::Backend::IoUring) {
        on_uring::main();
    }
}
