// Type parameters must be `'static`: the compiler says so at the spawn.
#[loom::fiber]
fn handle<T: std::fmt::Debug>(value: T) {
    println!("{value:?}");
}

fn main() {
    let _ = handle::<u8>;
}
