// `main` returning a `Result`: `?` works inside, as in any `main`.
use std::error::Error;

#[loom::main(fibers = 16)]
fn main() -> Result<(), Box<dyn Error>> {
    let n: u32 = "42".parse()?;
    assert_eq!(n, 42);
    loom::time::sleep(std::time::Duration::from_millis(1))?;
    Ok(())
}
