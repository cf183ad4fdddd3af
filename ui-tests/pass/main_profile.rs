// `profile`: a zone named `<module>::main` opens the main fiber's body.
mod explicit {
    #[loom::main(profile = true, fibers = 16)]
    pub fn main() {}
}

mod off {
    #[loom::main(profile = false, fibers = 16)]
    pub fn main() {}
}

#[loom::main(profile, fibers = 16)]
fn main() {
    std::thread::spawn(|| {
        explicit::main();
        off::main();
    })
    .join()
    .unwrap();
}
