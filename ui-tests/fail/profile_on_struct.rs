#[loom::profile]
struct Stats {
    total: u64,
}

fn main() {
    let _ = Stats { total: 0 }.total;
}
