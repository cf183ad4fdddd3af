// `backend = "auto"`: io_uring where usable, else epoll or kqueue.
#[loom::main(backend = "auto", fibers = 16)]
fn main() {
    assert_ne!(loom::rt::backend(), loom::rt::Backend::Auto);
}
