//! N spawn+join round trips, then two fibers yielding N times each.
//!
//! Used to check that the data path makes no system calls: the count from
//! `strace -c` must not depend on N (see docs/PERFORMANCE.md).
//!
//! `cargo run --release --example spawn_loop -- 1000000`

fn main() {
    loom_examples::init_logging();
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1000, |a| a.parse().expect("N must be a number"));
    loom::Runtime::builder()
        .build()
        .expect("build a runtime")
        .run(move || {
            for i in 0..n {
                assert_eq!(loom::spawn(move || i).join().unwrap(), i);
            }
            let spin = move || {
                for _ in 0..n {
                    loom::yield_now();
                }
            };
            let (a, b) = (loom::spawn(spin), loom::spawn(spin));
            a.join().unwrap();
            b.join().unwrap();
        });
}
