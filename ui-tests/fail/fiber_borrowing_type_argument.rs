use std::borrow::Cow;

#[loom::fiber]
fn handle(_args: std::fmt::Arguments<'_>, _text: Cow<'static, str>) {}

fn main() {
    let _ = handle;
}
