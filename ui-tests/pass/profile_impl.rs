// #[loom::profile] on `impl` blocks: each method with a body gets a zone
// `<module>::Type::method`; `const fn`s are left alone.
struct Stats<T> {
    total: T,
}

#[loom::profile]
impl<T: Copy + std::ops::Add<Output = T>> Stats<T> {
    fn add(&mut self, n: T) {
        self.total = self.total + n;
    }

    const fn get(&self) -> &T {
        &self.total
    }
}

#[loom::profile]
impl std::fmt::Display for Stats<u32> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.total)
    }
}

fn main() {
    let mut stats = Stats { total: 1 };
    stats.add(2);
    assert_eq!(*stats.get(), 3);
    assert_eq!(stats.to_string(), "3");
}
