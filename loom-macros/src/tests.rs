//! Unit tests of the parsing helpers and of the expansions' shape. What
//! the compiler makes of the expansions is in `ui-tests/` and
//! `tests/macros.rs`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::options::{self, BackendChoice, Macro, Pin, edit_distance, human, parse_size};

fn error_of(args: TokenStream, on: Macro) -> String {
    match options::parse(args, on) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Token text without spaces, so assertions do not depend on how
/// proc-macro2 spaces tokens.
fn compact(tokens: &TokenStream) -> String {
    tokens.to_string().split_whitespace().collect()
}

#[test]
fn sizes_parse_in_binary_units() {
    assert_eq!(parse_size("16384"), Ok(16384));
    assert_eq!(parse_size("16_384"), Ok(16384));
    assert_eq!(parse_size("4096B"), Ok(4096));
    assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
    assert_eq!(parse_size(" 1 MiB "), Ok(1 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert!(parse_size("64KB").unwrap_err().contains("\"64KiB\""));
    assert!(parse_size("2mb").unwrap_err().contains("\"2MiB\""));
    assert!(parse_size("big").unwrap_err().contains("not a size"));
    assert!(parse_size("").unwrap_err().contains("not a size"));
    assert!(parse_size("1 parsec").unwrap_err().contains("unknown unit"));
    assert!(
        parse_size("99999999999999999999")
            .unwrap_err()
            .contains("too large")
    );
    assert!(
        parse_size("99999999999GiB")
            .unwrap_err()
            .contains("too large")
    );
}

#[test]
fn sizes_print_as_written() {
    assert_eq!(human(65536), "64KiB");
    assert_eq!(human(1 << 20), "1MiB");
    assert_eq!(human(3 << 30), "3GiB");
    assert_eq!(human(20480), "20KiB");
    assert_eq!(human(20000), "20000B");
}

#[test]
fn edit_distance_counts_swaps_as_one() {
    assert_eq!(edit_distance("stak_size", "stack_size"), 1);
    assert_eq!(edit_distance("thraeds", "threads"), 1);
    assert_eq!(edit_distance("fibers", "fibers"), 0);
    assert_eq!(edit_distance("", "pin"), 3);
}

#[test]
fn runtime_options_parse() {
    let parsed = options::parse(
        quote!(
            backend = "epoll",
            threads = 2,
            pin_cpus = [0, 3],
            stack_size = "32KiB",
            fibers = 8,
            max_fibers = 16,
            profile,
            crate = "my::loom"
        ),
        Macro::Main,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        parsed.backend.map(|b| b.value),
        Some(BackendChoice::One(options::Backend::Epoll))
    );
    assert_eq!(parsed.threads.map(|t| t.value), Some(2));
    assert_eq!(parsed.pin_cpus.map(|c| c.value), Some(vec![0, 3]));
    assert_eq!(parsed.stack_size.map(|s| s.value), Some(32 * 1024));
    assert_eq!(parsed.fibers.map(|f| f.value), Some(8));
    assert_eq!(parsed.max_fibers.map(|m| m.value), Some(16));
    assert!(parsed.profile);
    assert_eq!(
        compact(&parsed.krate.map(|k| quote!(#k)).unwrap()),
        "my::loom"
    );

    let parsed = options::parse(quote!(pin = 1, profile = false), Macro::Test).unwrap();
    assert_eq!(parsed.pin.map(|p| p.value), Some(Pin::Cpu(1)));
    assert!(!parsed.profile);
    let parsed = options::parse(quote!(backend = "all"), Macro::Test).unwrap();
    assert_eq!(parsed.backend.map(|b| b.value), Some(BackendChoice::All));
}

#[test]
fn option_errors_say_what_to_write() {
    let e = error_of(quote!(threads = 1, threads = 2), Macro::Main);
    assert!(e.contains("duplicate option `threads`"), "{e}");
    let e = error_of(quote!(stak_size = 1), Macro::Main);
    assert!(e.contains("did you mean `stack_size`?"), "{e}");
    let e = error_of(quote!(stack = 1), Macro::Fiber);
    assert!(e.contains("did you mean `stack_size`?"), "{e}");
    let e = error_of(quote!(threads), Macro::Main);
    assert!(e.contains("did you mean `threads = 4`?"), "{e}");
    let e = error_of(quote!(name = "x"), Macro::Test);
    assert!(e.contains("not an option of #[loom::test]"), "{e}");
    let e = error_of(quote!(fibers = 64, max_fibers = 32), Macro::Main);
    assert!(e.contains("below `fibers` (64)"), "{e}");
    let e = error_of(quote!(max_fibers = 10), Macro::Main);
    assert!(e.contains("default `fibers` (1024"), "{e}");
    let e = error_of(quote!(backend = "all"), Macro::Main);
    assert!(e.contains("is for #[loom::test]"), "{e}");
    let e = error_of(quote!(backend = "io-uring"), Macro::Main);
    assert!(e.contains("did you mean \"io_uring\"?"), "{e}");
    let e = error_of(quote!(threads = 3, pin = 2), Macro::Main);
    assert!(e.contains("pin_cpus = [2, 3, 4]"), "{e}");
    let e = error_of(quote!(stack_size = 16385), Macro::Main);
    assert!(
        e.contains("use 16384 (\"16KiB\") or 20480 (\"20KiB\")"),
        "{e}"
    );
    let e = error_of(quote!(name = ""), Macro::Fiber);
    assert!(e.contains("must not be empty"), "{e}");
    let e = error_of(quote!(threads: 2), Macro::Main);
    assert!(e.contains("expected `=` after `threads`"), "{e}");
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = match options::parse(quote!(threads = 0, fibers = 0, colour = 1), Macro::Main) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.into_iter().count(),
    };
    assert_eq!(errors, 3);
}

#[test]
fn main_expands_to_the_builder() {
    let out = crate::entry::expand(
        quote!(threads = 2, pin = true, stack_size = "32KiB"),
        quote! {
            /// Docs stay.
            fn main() -> std::io::Result<()> { #![allow(unused)] Ok(()) }
        },
        Macro::Main,
    );
    let out = compact(&out);
    assert!(
        out.starts_with("#[doc=r\"Docsstay.\"]#[allow(unused)]fnmain()"),
        "{out}"
    );
    assert!(
        out.contains(
            "::loom::__private::run_main(::loom::__private::rt::Builder::new()\
             .threads(2).pin(true).stack_size(32768),move||->std::io::Result<()>{Ok(())})"
        ),
        "{out}"
    );
}

#[test]
fn test_expands_to_run_test() {
    let out = crate::entry::expand(
        quote!(backend = "epoll", crate = "my::loom"),
        quote! { #[ignore] fn echo() {} },
        Macro::Test,
    );
    let out = compact(&out);
    assert!(
        out.starts_with("#[::core::prelude::v1::test]#[ignore]fnecho()"),
        "{out}"
    );
    assert!(
        out.contains(
            "my::loom::__private::run_test(\"echo\",::core::option::Option::Some(\
             my::loom::__private::rt::Backend::Epoll),my::loom::__private::rt::Builder::new(),"
        ),
        "{out}"
    );
}

#[test]
fn fiber_rebinds_its_arguments_inside_the_fiber() {
    let out = crate::fiber::expand(
        quote!(name = "conn", stack_size = 65536),
        quote! { pub fn handle(mut n: u32, (a, b): (u8, u8)) -> u32 { n } },
    );
    let out = compact(&out);
    assert!(
        out.starts_with(
            "#[track_caller]pubfnhandle(n:u32,__loom_arg1:(u8,u8))->::loom::JoinHandle<u32>"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "spawn_fiber(\"conn\",::core::option::Option::Some(65536),move||->u32{\
             letmutn=n;let__loom_arg1=__loom_arg1;let(a,b)=__loom_arg1;n})"
        ),
        "{out}"
    );
}

#[test]
fn errors_keep_the_original_item() {
    let out = compact(&crate::fiber::expand(quote!(), quote! { fn f(s: &str) {} }));
    assert!(out.starts_with("fnf(s:&str){}"), "{out}");
    assert!(out.contains("compile_error!"), "{out}");
}

#[test]
fn profile_instruments_every_body_once() {
    let out = crate::profile::expand(
        quote!(),
        quote! {
            mod m {
                fn a() {}
                const fn skipped() {}
                async fn also_skipped() {}
                struct S;
                impl S { fn b(&self) {} }
                trait T { fn c(&self) {} fn d(&self); }
                mod inner {
                    fn e() {}
                    #[loom::profile]
                    fn own() {}
                }
            }
        },
    );
    let out = compact(&out);
    for name in ["\"::a\"", "\"::S::b\"", "\"::T::c\"", "\"::e\""] {
        assert_eq!(out.matches(name).count(), 1, "{name} in {out}");
    }
    assert_eq!(out.matches("zone!").count(), 4, "{out}");
}
