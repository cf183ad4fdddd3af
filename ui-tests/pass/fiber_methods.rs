// Associated functions taking `self` by value (also `mut self`,
// `self: Rc<Self>`, `self: Box<Self>`) and ones without a receiver.
use std::rc::Rc;

struct Conn {
    id: u32,
}

impl Conn {
    #[loom::fiber]
    fn new_fiber(id: u32) -> Conn {
        Conn { id }
    }

    #[loom::fiber]
    fn serve(self) -> u32 {
        self.id
    }

    #[loom::fiber(name = "bump")]
    fn bump(mut self) -> Self {
        self.id += 1;
        self
    }

    #[loom::fiber]
    fn shared(self: Rc<Self>) -> u32 {
        self.id * 10
    }

    #[loom::fiber]
    fn boxed(self: Box<Self>) -> u32 {
        self.id * 100
    }
}

#[loom::main(fibers = 16)]
fn main() {
    let conn = Conn::new_fiber(1).join().unwrap();
    let conn = conn.bump().join().unwrap();
    assert_eq!(Rc::new(Conn { id: conn.id }).shared().join().unwrap(), 20);
    assert_eq!(Box::new(Conn { id: 3 }).boxed().join().unwrap(), 300);
    assert_eq!(conn.serve().join().unwrap(), 2);
}
