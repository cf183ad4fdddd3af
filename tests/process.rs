//! Behaviour that needs a process of its own: exit status after a panic in
//! main, the stack-overflow report, fault chaining, shutdown under both
//! panic strategies, and guard-page exhaustion.

use loom_tests::{killed_by, run_child};

const CHILD: &str = env!("CARGO_BIN_EXE_loom-child");

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_panic_in_the_main_fiber_exits_with_status_101() {
    let output = run_child(CHILD, "panic-main", &[]);
    assert_eq!(output.status.code(), Some(101), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("boom in main"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn stack_overflow_names_the_fiber_and_aborts() {
    for guard in ["madvise", "mprotect"] {
        let output = run_child(CHILD, "overflow", &[("LOOM_STACK_GUARD", guard)]);
        let err = stderr(&output);
        assert_eq!(killed_by(&output), Some(libc::SIGABRT), "{guard}: {err}");
        assert!(
            err.contains("fiber 'deep' (#2) has overflowed its stack of 32 KiB"),
            "{guard}: {err}"
        );
    }
}

#[test]
fn faults_that_are_not_guard_hits_keep_their_default_action() {
    let output = run_child(CHILD, "wild-segfault", &[]);
    assert_eq!(
        killed_by(&output),
        Some(libc::SIGSEGV),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("overflowed"));
}

#[test]
fn shutdown_cancels_blocked_fibers_and_abandons_stubborn_ones() {
    let output = run_child(CHILD, "shutdown", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "shutdown ok"
    );
}

/// The same scenario built with `panic = "abort"`: shutdown must never
/// need to unwind a suspended fiber, or this child would abort.
#[test]
fn shutdown_is_sound_under_panic_abort() {
    // A child built beforehand, where cargo cannot run (CI's older-kernel VM).
    let child = std::env::var("LOOM_ABORT_CHILD_BIN").unwrap_or_else(|_| {
        let target_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/panic-abort");
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--profile",
                "abort",
                "-p",
                "loom-tests",
                "--bin",
                "loom-child",
            ])
            .args(["--target-dir", target_dir])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the panic=abort child failed");
        format!("{target_dir}/abort/loom-child")
    });
    let output = run_child(&child, "shutdown", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "shutdown ok"
    );
    // And a panic really aborts in that build (it is not silently unwinding).
    let output = run_child(&child, "panic-main", &[]);
    assert_eq!(
        killed_by(&output),
        Some(libc::SIGABRT),
        "{}",
        stderr(&output)
    );
}

#[test]
fn mprotect_guards_past_vm_max_map_count_are_a_clear_error() {
    let output = run_child(
        CHILD,
        "guard-exhaustion",
        &[("LOOM_STACK_GUARD", "mprotect")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", stderr(&output));
    assert!(
        stdout.contains("vm.max_map_count") && stdout.contains("guard exhaustion ok"),
        "{stdout}"
    );
}

#[test]
fn spawning_past_the_stack_budget_waits_for_a_free_stack() {
    let output = run_child(CHILD, "guard-budget", &[("LOOM_STACK_GUARD", "mprotect")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let err = stderr(&output);
    assert!(output.status.success(), "{stdout}{err}");
    assert!(stdout.contains("guard budget ok"), "{stdout}{err}");
    // Logged once, with the sysctl that would let the pool grow.
    let warnings = err.matches("sysctl -w vm.max_map_count=").count();
    assert_eq!(warnings, 1, "{err}");
    println!("{stdout}{err}");
}
