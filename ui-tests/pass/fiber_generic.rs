// Type and const parameters work when the types are `'static` (a fiber
// outlives its caller); `impl Trait` arguments too.
use std::fmt::Display;

#[loom::fiber]
fn repeat<T: Clone + 'static, const N: usize>(value: T) -> [T; N] {
    std::array::from_fn(|_| value.clone())
}

#[loom::fiber]
fn show(value: impl Display + 'static) -> String
where
{
    value.to_string()
}

#[loom::main(fibers = 16)]
fn main() {
    assert_eq!(repeat::<_, 3>('x').join().unwrap(), ['x'; 3]);
    assert_eq!(show(5).join().unwrap(), "5");
}
