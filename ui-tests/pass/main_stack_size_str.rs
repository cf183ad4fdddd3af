// `stack_size = "<n><unit>"`: B, KiB, MiB or GiB, or plain bytes.
mod kib {
    #[loom::main(stack_size = "48KiB", fibers = 16)]
    pub fn main() {}
}

mod mib {
    #[loom::main(stack_size = "1 MiB", fibers = 16)]
    pub fn main() {}
}

mod bytes {
    #[loom::main(stack_size = "16_384", fibers = 16)]
    pub fn main() {}
}

fn main() {
    kib::main();
    mib::main();
    bytes::main();
}
