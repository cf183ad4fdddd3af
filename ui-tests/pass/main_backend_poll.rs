// `backend = "epoll"` (Linux) and `backend = "kqueue"` (macOS, BSDs).
#[cfg_attr(target_os = "linux", loom::main(backend = "epoll", fibers = 16))]
#[cfg_attr(not(target_os = "linux"), loom::main(backend = "kqueue", fibers = 16))]
fn main() {
    let expected = if cfg!(target_os = "linux") {
        loom::rt::Backend::Epoll
    } else {
        loom::rt::Backend::Kqueue
    };
    assert_eq!(loom::rt::backend(), expected);
}
