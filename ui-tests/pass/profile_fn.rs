// #[loom::profile] on a function: a zone named `<module>::work`.
#[loom::profile]
fn work(n: u32) -> u32 {
    #![allow(clippy::identity_op)]
    n + 0
}

#[loom::profile]
fn with_inner_items() -> u32 {
    fn inner() -> u32 {
        2
    }
    inner()
}

fn main() {
    assert_eq!(work(1) + with_inner_items(), 3);
}
