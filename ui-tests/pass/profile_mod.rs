// #[loom::profile] on an inline module: functions, impls, trait default
// methods and nested inline modules, recursively.
#[loom::profile]
mod handlers {
    pub fn parse(line: &str) -> usize {
        line.len()
    }

    pub const fn constant() -> usize {
        1
    }

    pub trait Greet {
        fn name(&self) -> String;

        fn greet(&self) -> String {
            format!("hello {}", self.name())
        }
    }

    pub struct World;

    impl Greet for World {
        fn name(&self) -> String {
            "world".to_owned()
        }
    }

    pub mod nested {
        pub fn deeper() -> u8 {
            2
        }

        // Its own attribute instruments it; the module's leaves it alone.
        #[loom::profile]
        pub fn marked() -> u8 {
            3
        }
    }

    pub struct Plain;
}

use handlers::Greet;

fn main() {
    assert_eq!(handlers::parse("abc") + handlers::constant(), 4);
    assert_eq!(handlers::World.greet(), "hello world");
    assert_eq!(handlers::nested::deeper() + handlers::nested::marked(), 5);
    let _ = handlers::Plain;
}
