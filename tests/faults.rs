//! Faults that need a process of their own: running out of file
//! descriptors on each backend, and io_uring refused by a seccomp filter.

use std::process::Output;

use loom_tests::{build_example, run_child};

const CHILD: &str = env!("CARGO_BIN_EXE_loom-child");

fn report(output: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn emfile_on_accept_backs_off_and_recovers_on_every_backend() {
    for backend in loom::rt::Backend::available() {
        let output = run_child(CHILD, "emfile", &[("LOOM_BACKEND", backend.name())]);
        assert!(output.status.success(), "[{backend}] {}", report(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("emfile ok on {backend}")),
            "{}",
            report(&output)
        );
    }
}

#[test]
fn io_uring_refused_by_seccomp_falls_back_to_epoll() {
    let output = run_child(CHILD, "uring-denied", &[]);
    assert!(output.status.success(), "{}", report(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("explicit io_uring: io_uring_setup:"),
        "{}",
        report(&output)
    );
    assert!(stdout.contains("auto chose epoll"), "{}", report(&output));
    // Exactly one log line, naming the reason.
    let fallback_lines: Vec<_> = stderr
        .lines()
        .filter(|line| line.contains("io_uring unavailable"))
        .collect();
    assert_eq!(fallback_lines.len(), 1, "{}", report(&output));
    assert!(fallback_lines[0].contains("EPERM") || fallback_lines[0].contains("not permitted"));
}

/// The fallback lines the exec'd program wrote: those of `env_logger`
/// (`[TIME INFO  loom_runtime::driver] loom: io_uring unavailable ...`), not
/// the `[INFO] loom: ...` of the child's own logger, which ran first.
fn program_fallback_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.contains("io_uring unavailable") && !line.starts_with("[INFO] "))
        .map(str::to_owned)
        .collect()
}

/// `demo --quick` run under the seccomp filter that refuses io_uring,
/// with `env` (`NAME=value`) set for it.
fn demo_with_io_uring_denied(env: Option<&str>) -> Output {
    let demo = build_example("demo");
    let mut vars = vec![
        ("LOOM_CHILD_EXEC", demo.as_str()),
        ("LOOM_CHILD_EXEC_ARGS", "--quick"),
    ];
    vars.extend(env.map(|env| ("LOOM_CHILD_EXEC_ENV", env)));
    run_child(CHILD, "uring-denied", &vars)
}

/// README command 1 under the same seccomp filter: the demo runs its echo
/// table on epoll only, the rest of it still works, and it says on stderr
/// why it is on epoll — once, at `info`, the default level of the examples'
/// logger (`loom_examples::init_logging`), installed before the runtime.
#[test]
fn the_demo_runs_when_io_uring_is_refused() {
    let output = demo_with_io_uring_denied(None);
    assert!(output.status.success(), "{}", report(&output));
    let fallback = program_fallback_lines(&output);
    assert_eq!(fallback.len(), 1, "{}", report(&output));
    assert!(
        fallback[0].contains(" INFO ")
            && fallback[0].contains("loom: io_uring unavailable (io_uring_setup: ")
            && fallback[0].contains("); using epoll instead"),
        "{}",
        report(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.contains("messages/s"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(table.len(), 1, "{}", report(&output));
    assert!(
        table[0].trim_start().starts_with("epoll"),
        "{}",
        report(&output)
    );
    assert!(stdout.contains("loom demo 2/2"), "{}", report(&output));
}

/// `RUST_LOG=off` silences the examples' logger: the demo falls back to
/// epoll without a word.
#[test]
fn the_demo_falls_back_silently_with_rust_log_off() {
    let output = demo_with_io_uring_denied(Some("RUST_LOG=off"));
    assert!(output.status.success(), "{}", report(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("loom demo 2/2"), "{}", report(&output));
    assert_eq!(
        program_fallback_lines(&output),
        Vec::<String>::new(),
        "{}",
        report(&output)
    );
}

/// `LOOM_BACKEND=io_uring` where io_uring is refused: `#[loom::main]`
/// says why and exits with status 1 — no panic, no fallback the user did
/// not ask for.
#[test]
fn loom_backend_io_uring_where_it_is_refused_is_a_clear_error() {
    let output = demo_with_io_uring_denied(Some("LOOM_BACKEND=io_uring"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", report(&output));
    assert!(
        stderr.contains(
            "Error: loom::main: cannot start the runtime: LOOM_BACKEND=io_uring, but io_uring \
             cannot be used here"
        ) && stderr.contains("unset LOOM_BACKEND"),
        "{}",
        report(&output)
    );
    assert!(!stderr.contains("panicked"), "{}", report(&output));
}
