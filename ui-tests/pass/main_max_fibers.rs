// `max_fibers = N`: at most N stacks in use per loop; spawns past it wait
// for a fiber to finish and release its stack.
use std::cell::Cell;
use std::rc::Rc;

mod alone {
    // Without `fibers`, `max_fibers` must cover the 1024 reserved by default.
    #[loom::main(max_fibers = 2048)]
    pub fn main() {}
}

#[loom::main(fibers = 2, max_fibers = 4)]
fn main() {
    let done = Rc::new(Cell::new(0));
    for _ in 0..16 {
        let done = Rc::clone(&done);
        // Detached: the stack returns to the pool when the fiber ends.
        drop(loom::spawn(move || done.set(done.get() + 1)));
    }
    while done.get() < 16 {
        loom::yield_now();
    }
    std::thread::spawn(alone::main).join().unwrap();
}
