// #[loom::test] with each option. (trybuild builds without `--test`, where
// `#[test]` functions are left out; tests/macros.rs runs them for real.)
#[loom::test]
fn default_all_backends() {}

#[loom::test(backend = "all")]
fn all_backends() {}

#[loom::test(backend = "auto")]
fn auto_backend() {}

#[loom::test(backend = "epoll")]
fn epoll_backend() {}

#[loom::test(backend = "io_uring")]
fn io_uring_backend() {}

#[loom::test(backend = "kqueue")]
fn kqueue_backend() {}

#[loom::test(threads = 2, pin = true)]
fn threads_and_pin() {}

#[loom::test(pin = 0)]
fn pin_cpu() {}

#[loom::test(threads = 2, pin_cpus = [0, 1])]
fn pin_cpus() {}

#[loom::test(stack_size = "32KiB", fibers = 8, max_fibers = 16)]
fn sizes() {}

#[loom::test(profile)]
fn profiled() {}

#[loom::test]
fn returns_result() -> std::io::Result<()> {
    Ok(())
}

#[loom::test]
#[should_panic(expected = "boom")]
fn should_panic() {
    panic!("boom");
}

#[loom::test]
#[ignore = "slow"]
fn ignored() {}

fn main() {}
