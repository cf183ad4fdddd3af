//! Code the examples share: [`init_logging`], which every example's `main`
//! calls first, and [`http`], the HTTP/1.1 server `http_server` and
//! `https_server` run (and the HTTP benchmark measures).

pub mod http;

/// Installs [`env_logger`] as the [`log`] backend: the level comes from
/// `RUST_LOG` (`RUST_LOG=debug`, `RUST_LOG=off`, `RUST_LOG=loom_runtime=warn`),
/// `info` when it is unset. Lines go to stderr, so stdout stays the
/// example's own.
///
/// loom prints nothing itself; it reports through the `log` facade, and
/// without a logger its lines are dropped. The one that matters most to
/// someone running an example: when io_uring is refused (a seccomp filter,
/// `kernel.io_uring_disabled`, a kernel older than 5.11), a runtime built
/// with the default backend falls back to epoll and says so at `info` —
/// without this, a run on epoll looks like a run on io_uring.
///
/// Call it first thing in `main`, before any runtime is built: the
/// fallback is logged while the runtime is built, once per process, and a
/// line logged before the logger is installed is lost. `#[loom::main]`
/// builds its runtime before its body runs, so an example that uses it
/// installs the logger in a plain `fn main` that then calls the
/// `#[loom::main]` one (see `echo.rs`).
///
/// # Panics
///
/// If a logger is already installed.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}
