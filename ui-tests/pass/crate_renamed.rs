// `crate = "path"`: the expansion reaches loom through the given path, for
// crates that re-export loom (here a module stands in for such a crate).
mod framework {
    pub use loom as engine;
}

#[framework::engine::fiber(crate = "framework::engine")]
fn child() -> u8 {
    7
}

#[framework::engine::profile(crate = "crate::framework::engine")]
fn helper() -> u8 {
    1
}

#[framework::engine::test(crate = "framework::engine")]
fn a_test() {}

#[framework::engine::main(crate = "framework::engine", fibers = 16)]
fn main() {
    assert_eq!(child().join().unwrap() + helper(), 8);
}
