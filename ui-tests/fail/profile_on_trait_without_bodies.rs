#[loom::profile]
trait Handler {
    fn handle(&self);
}

fn main() {}
