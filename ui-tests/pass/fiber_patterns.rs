// Argument patterns: `mut`, tuples, structs, `_`, and `&'static` borrows.
struct Point {
    x: i32,
    y: i32,
}

#[loom::fiber]
fn patterns(
    mut total: i32,
    (a, b): (i32, i32),
    Point { x, y }: Point,
    _: String,
    label: &'static str,
) -> String {
    total += a + b + x + y;
    format!("{label}{total}")
}

#[loom::main(fibers = 16)]
fn main() {
    let handle = patterns(1, (2, 3), Point { x: 4, y: 5 }, String::new(), "total=");
    assert_eq!(handle.join().unwrap(), "total=15");
}
