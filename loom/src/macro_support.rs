//! What the expansions of `#[loom::main]`, `#[loom::fiber]` and
//! `#[loom::test]` call, through `loom::__private`. Each function is the
//! builder API plus the panic message a macro user needs; none of it is a
//! public API.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use loom_runtime::{JoinHandle, fiber, rt};

/// `#[loom::main]`: builds the runtime and runs `main` as its main fiber.
///
/// If the runtime cannot be built — the host lacks what was asked for, such
/// as `LOOM_BACKEND=io_uring` on a kernel that refuses io_uring — the
/// program prints why to stderr and exits with status 1, as a `main` that
/// returns an error does: that is a deployment problem, not a bug, and a
/// panic's backtrace hint would only hide the reason.
///
/// # Panics
///
/// As [`rt::Runtime::run`] does.
#[track_caller]
pub fn run_main<F, T>(builder: rt::Builder, main: F) -> T
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match builder.build() {
        Ok(runtime) => runtime.run(main),
        Err(e) => {
            eprintln!("Error: loom::main: cannot start the runtime: {e}");
            std::process::exit(1)
        }
    }
}

/// `#[loom::fiber]`: spawns the body as a fiber named `name` on the
/// current loop.
///
/// # Panics
///
/// Outside a loom runtime, saying what to do instead, and if the spawn
/// fails (as [`loom_runtime::spawn`] does).
#[track_caller]
pub fn spawn_fiber<F, T>(name: &'static str, stack_bytes: Option<usize>, body: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    if fiber::try_current().is_none() {
        panic!(
            "loom: `{name}` is a #[loom::fiber] and spawns a fiber; call it from inside a loom \
             runtime (#[loom::main], #[loom::test] or Runtime::run)"
        );
    }
    let mut builder = fiber::Builder::new().name(name);
    if let Some(bytes) = stack_bytes {
        builder = builder.stack_size(bytes);
    }
    match builder.spawn(body) {
        Ok(handle) => handle,
        Err(e) => panic!("loom: cannot spawn the fiber `{name}`: {e}"),
    }
}

/// What a `#[loom::test]` may return: `()` or a `Result`.
#[diagnostic::on_unimplemented(
    message = "a #[loom::test] returns `()` or a `Result<(), E>`, not `{Self}`",
    label = "this return type"
)]
pub trait TestOutcome {
    /// Whether the outcome fails the test.
    fn is_failure(&self) -> bool;
}

impl TestOutcome for () {
    fn is_failure(&self) -> bool {
        false
    }
}

impl<T, E> TestOutcome for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }
}

/// `#[loom::test]`: runs `body` as the main fiber of a fresh runtime made
/// from `builder`, on `backend`, or once on each backend this host has
/// ([`rt::Backend::available`]) when it is `None`. A failure names the
/// backend; the first one ends the test.
///
/// # Panics
///
/// If a runtime cannot be built, or the body panics on some backend: the
/// message is ``loom::test `name` failed on backend B: <the body's message>``,
/// so `#[should_panic(expected = "...")]` still matches the body's text.
#[track_caller]
pub fn run_test<F, T>(
    name: &'static str,
    backend: Option<rt::Backend>,
    builder: rt::Builder,
    body: F,
) -> T
where
    F: Fn() -> T + Clone + 'static,
    T: TestOutcome + 'static,
{
    let backends = match backend {
        Some(backend) => vec![backend],
        None => rt::Backend::available(),
    };
    let mut outcome = None;
    for backend in backends {
        let runtime = match builder.clone().backend(backend).build() {
            Ok(runtime) => runtime,
            Err(e) => {
                panic!("loom::test `{name}`: cannot start a runtime on backend {backend}: {e}")
            }
        };
        // `Auto` names the backend it chose.
        let backend = runtime.backend();
        let body = body.clone();
        match panic::catch_unwind(AssertUnwindSafe(move || runtime.run(body))) {
            Ok(result) if result.is_failure() => {
                eprintln!("loom::test `{name}` failed on backend {backend}");
                return result;
            }
            Ok(result) => outcome = Some(result),
            Err(payload) => fail(name, backend, payload),
        }
    }
    outcome.expect("every host has at least one backend")
}

/// Panics again with the backend in the message, or, for a payload that is
/// not a message, reports the backend and resumes with the payload.
#[track_caller]
fn fail(name: &str, backend: rt::Backend, payload: Box<dyn Any + Send>) -> ! {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    match message {
        Some(message) => panic!("loom::test `{name}` failed on backend {backend}: {message}"),
        None => {
            eprintln!("loom::test `{name}` failed on backend {backend}");
            panic::resume_unwind(payload)
        }
    }
}
