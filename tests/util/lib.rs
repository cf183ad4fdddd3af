//! Helpers shared by loom's integration tests.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A runtime with the defaults but a small pool, for tests.
pub fn runtime() -> loom::Runtime {
    loom::Runtime::builder()
        .fibers(64)
        .build()
        .expect("build a runtime")
}

/// Writes a line to stderr even from a passing test: libtest captures
/// `eprintln!`, so a test that runs smaller or skips a part must say so
/// here, where `cargo test` shows it.
pub fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// `wanted` fibers holding a stack each, or — where the host's stack
/// budget (`mprotect` guard pages below Linux 6.13, two mappings per stack
/// under `vm.max_map_count`) holds fewer — three quarters of the budget,
/// leaving room for the tests running beside this one. Says so on stderr,
/// so a smaller run is never silent.
pub fn fibers_within_budget(test: &str, wanted: usize) -> usize {
    let budget = loom::rt::stack_budget();
    match budget.stacks() {
        Some(fit) if fit < wanted => {
            let count = fit / 4 * 3;
            say(format_args!(
                "{test}: running {count} fibers, not {wanted}: {budget}; `sysctl -w \
                 vm.max_map_count={}` would fit them all",
                budget.max_map_count_for(wanted).unwrap_or(0)
            ));
            count
        }
        _ => wanted,
    }
}

/// Raises this process's soft limit on open descriptors to its hard limit
/// and returns it, for tests that hold thousands of sockets: shells and
/// init systems often start processes at 1024 (a VM's init does).
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill in.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit(RLIMIT_NOFILE)");
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit; raising the soft limit up to
        // the hard one needs no privilege.
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(set, 0, "setrlimit(RLIMIT_NOFILE)");
    }
    limit.rlim_cur
}

/// A deterministic byte pattern (xorshift), distinct for each `seed`, for
/// transfer tests that check every byte arrived.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// FNV-1a over `bytes`: what transfer tests compare instead of the bytes.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs `f` as the main fiber of a fresh runtime once per I/O backend this
/// host supports (io_uring and epoll on Linux), so every I/O behaviour is
/// checked on each. A failure names the backend it happened on.
pub fn on_each_backend<T: 'static>(f: impl Fn() -> T + Clone + 'static) -> Vec<T> {
    on_each_backend_with(|b| b.fibers(64), f)
}

/// [`on_each_backend`] with a customised builder.
pub fn on_each_backend_with<T: 'static>(
    configure: impl Fn(loom::rt::Builder) -> loom::rt::Builder,
    f: impl Fn() -> T + Clone + 'static,
) -> Vec<T> {
    let backends = loom::rt::Backend::available();
    assert!(!backends.is_empty());
    backends
        .into_iter()
        .map(|backend| {
            let rt = configure(loom::Runtime::builder().backend(backend))
                .build()
                .unwrap_or_else(|e| panic!("[{backend}] cannot build a runtime: {e}"));
            assert_eq!(rt.backend(), backend);
            let f = f.clone();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || rt.run(f))) {
                Ok(value) => value,
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| payload.downcast_ref::<&str>().copied())
                        .unwrap_or("(non-string panic)");
                    panic!("[backend {backend}] {message}");
                }
            }
        })
        .collect()
}

/// A global allocator that counts allocations made *by the calling
/// thread*, so tests running in parallel on other threads do not disturb a
/// measurement. Install it with `#[global_allocator]` in a test binary.
#[derive(Debug)]
pub struct CountingAlloc;

thread_local! {
    // const-initialised and without a destructor: touching it from inside
    // the allocator never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    // Debug aid: print where each allocation comes from while tracing.
    if TRACING.try_with(|t| t.replace(false)).unwrap_or(false) {
        eprintln!(
            "allocation at:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        TRACING.with(|t| t.set(true));
    }
}

/// While on, every allocation by this thread prints a backtrace to stderr
/// (a debugging aid for a failing zero-allocation test).
pub fn trace_allocations(on: bool) {
    TRACING.with(|t| t.set(on));
}

// SAFETY: every method forwards to `System` unchanged; counting has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations made by this thread so far (needs [`CountingAlloc`]
/// installed as the global allocator).
pub fn thread_allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs the `loom-child` helper program with `scenario`, with a time limit.
pub fn run_child(program: &str, scenario: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(program);
    command.arg(scenario).env_remove("RUST_BACKTRACE");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child program");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("poll the child").is_some() {
            return child
                .wait_with_output()
                .expect("collect the child's output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child scenario {scenario:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The signal that killed a child, if any.
pub fn killed_by(output: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal()
}

/// The path of example `name` (debug build), built here unless the
/// environment variable `LOOM_<NAME>_BIN` names a binary already built.
/// Tests that run an example as a child process start it from here.
pub fn build_example(name: &str) -> String {
    let var = format!("LOOM_{}_BIN", name.to_ascii_uppercase());
    if let Ok(path) = std::env::var(&var) {
        return path;
    }
    let target_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "loom-examples", "--example", name])
        .args(["--target-dir", target_dir])
        .status()
        .expect("run cargo");
    assert!(status.success(), "building example {name} failed");
    format!("{target_dir}/debug/examples/{name}")
}

/// Reads an example's first line of output, `NAME: listening on ADDR`,
/// and returns the address: how every server example says where it is.
pub fn listening_addr(name: &str, stdout: &mut impl std::io::BufRead) -> std::net::SocketAddr {
    let mut first = String::new();
    stdout
        .read_line(&mut first)
        .expect("read the example's output");
    first
        .trim()
        .strip_prefix(&format!("{name}: listening on "))
        .unwrap_or_else(|| panic!("{name}: unexpected first line {first:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {first:?}: {e}"))
}
