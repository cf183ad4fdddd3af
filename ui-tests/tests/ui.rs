//! Runs the trybuild cases: every `fail/*.rs` must fail to compile with
//! exactly its `.stderr`, every `pass/*.rs` must compile and exit 0.
//! Refresh the `.stderr` files with `TRYBUILD=overwrite cargo test -p
//! loom-ui-tests` (the toolchain is pinned, so they are stable), then read
//! each one.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("pass/*.rs");
    cases.compile_fail("fail/*.rs");
}
