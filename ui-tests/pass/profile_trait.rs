// #[loom::profile] on a trait: its default method bodies get zones
// `<module>::Trait::method`.
#[loom::profile]
trait Shape {
    fn sides(&self) -> u32;

    fn describe(&self) -> String {
        format!("{} sides", self.sides())
    }
}

struct Square;

impl Shape for Square {
    fn sides(&self) -> u32 {
        4
    }
}

fn main() {
    assert_eq!(Square.describe(), "4 sides");
}
