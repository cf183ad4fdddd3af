//! `#[loom::main]` and `#[loom::test]`: build a runtime from the options
//! and run the body as its main fiber.
//!
//! ```text
//! #[loom::main(threads = 2, stack_size = "32KiB")]
//! fn main() -> io::Result<()> { body }
//! // becomes
//! fn main() -> io::Result<()> {
//!     loom::__private::run_main(
//!         loom::__private::rt::Builder::new().threads(2).stack_size(32768),
//!         move || -> io::Result<()> { body },
//!     )
//! }
//!
//! #[loom::test]
//! fn echo() { body }
//! // becomes
//! #[::core::prelude::v1::test]
//! fn echo() {
//!     loom::__private::run_test("echo", None, loom::__private::rt::Builder::new(),
//!         move || -> () { body })
//! }
//! ```

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use syn::Attribute;

use crate::item::{FnItem, with_errors};
use crate::options::{self, BackendChoice, Errors, Macro, Options, Pin};
use crate::profile;

pub(crate) fn expand(args: TokenStream, item: TokenStream, on: Macro) -> TokenStream {
    let mut errors = Errors::default();
    let options = options::parse(args, on).map_err(|e| errors.push(e)).ok();
    let function = match FnItem::parse_for(item.clone(), on.attr()) {
        Ok(function) => function,
        Err(e) => {
            errors.push(e);
            return with_errors(item, errors.finish().unwrap_err());
        }
    };
    check(&function, on, &mut errors);
    match (errors.finish(), options) {
        (Ok(()), Some(options)) => match on {
            Macro::Main => expand_main(&function, &options),
            _ => expand_test(&function, &options),
        },
        (Err(e), _) => {
            // The plain function, so completion and type checking inside
            // it keep working; a test that does not compile stays unused.
            let allow = match on {
                Macro::Test => quote!(#[allow(dead_code)]),
                _ => TokenStream::new(),
            };
            with_errors(quote!(#allow #item), e)
        }
        (Ok(()), None) => unreachable!("option errors are collected"),
    }
}

fn check(function: &FnItem, on: Macro, errors: &mut Errors) {
    let sig = &function.sig;
    let what = match on {
        Macro::Main => "loom's `main` runs as the main fiber of a runtime",
        _ => "a #[loom::test] runs as the main fiber of a runtime",
    };
    if let Some(token) = &sig.asyncness {
        errors.error(
            token.span,
            format!(
                "remove `async`: {what}, and a blocking call inside a fiber suspends only that \
                 fiber, so there is nothing to `.await`"
            ),
        );
    }
    if let Some(token) = &sig.constness {
        errors.error(token.span, format!("remove `const`: {what}"));
    }
    if on == Macro::Main && sig.ident != "main" {
        errors.error(
            sig.ident.span(),
            format!(
                "#[loom::main] goes on `fn main`; to run `{0}` as a fiber write \
                 #[loom::fiber] on it, or call `loom::Runtime::builder().build()?.run({0})`",
                sig.ident
            ),
        );
    }
    if !sig.generics.params.is_empty() {
        let which = match on {
            Macro::Main => "`main`",
            _ => "a #[loom::test]",
        };
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("{which} cannot be generic: remove the parameters"),
        ));
    }
    if !sig.inputs.is_empty() {
        let message = match on {
            Macro::Main => "`main` takes no arguments: read them inside with `std::env::args()`",
            _ => "a #[loom::test] takes no arguments: build its inputs inside the body",
        };
        errors.push(syn::Error::new_spanned(&sig.inputs, message));
    }
    if on == Macro::Test {
        for attr in &function.attrs {
            if is_test_attr(attr) {
                errors.push(syn::Error::new_spanned(
                    attr,
                    format!(
                        "#[loom::test] already makes `{}` a test: remove this `#[test]`",
                        sig.ident
                    ),
                ));
            }
        }
    }
}

/// `#[test]`, `#[core::prelude::v1::test]`, `#[::std::prelude::rust_2024::test]`.
fn is_test_attr(attr: &Attribute) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    match segments.as_slice() {
        [test] => test == "test",
        [root, prelude, _, test] => {
            (root == "core" || root == "std") && prelude == "prelude" && test == "test"
        }
        _ => false,
    }
}

/// `rt::Builder::new().threads(..)...` for every runtime option except
/// the test's backend, which `run_test` sets per run.
fn builder(options: &Options, krate: &TokenStream, with_backend: bool) -> TokenStream {
    let mut calls = TokenStream::new();
    if with_backend
        && let Some(choice) = &options.backend
        && let BackendChoice::One(backend) = choice.value
    {
        let variant = backend.variant();
        calls.extend(quote!(.backend(#krate::__private::rt::Backend::#variant)));
    }
    if let Some(threads) = &options.threads {
        let threads = Literal::usize_unsuffixed(threads.value);
        calls.extend(quote!(.threads(#threads)));
    }
    match options.pin.as_ref().map(|pin| pin.value) {
        Some(Pin::Flag(flag)) => calls.extend(quote!(.pin(#flag))),
        Some(Pin::Cpu(cpu)) => {
            let cpu = Literal::usize_unsuffixed(cpu);
            calls.extend(quote!(.pin_cpus(&[#cpu])));
        }
        None => {}
    }
    if let Some(cpus) = &options.pin_cpus {
        let cpus = cpus.value.iter().map(|&cpu| Literal::usize_unsuffixed(cpu));
        calls.extend(quote!(.pin_cpus(&[#(#cpus),*])));
    }
    for (option, method) in [
        (&options.stack_size, quote!(stack_size)),
        (&options.fibers, quote!(fibers)),
        (&options.max_fibers, quote!(max_fibers)),
    ] {
        if let Some(value) = option {
            let value = Literal::usize_unsuffixed(value.value);
            calls.extend(quote!(.#method(#value)));
        }
    }
    quote!(#krate::__private::rt::Builder::new() #calls)
}

fn expand_main(function: &FnItem, options: &Options) -> TokenStream {
    let krate = options.krate();
    let builder = builder(options, &krate, true);
    let zone = if options.profile {
        profile::zone(&krate, "::main")
    } else {
        TokenStream::new()
    };
    let attrs = function.outer_attrs();
    let vis = &function.vis;
    let sig = &function.sig;
    let output = function.output();
    let body = function.statements_with(zone);
    quote! {
        #attrs
        #vis #sig {
            #krate::__private::run_main(#builder, move || -> #output #body)
        }
    }
}

fn expand_test(function: &FnItem, options: &Options) -> TokenStream {
    let krate = options.krate();
    let builder = builder(options, &krate, false);
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let backend = match options.backend.as_ref().map(|b| b.value) {
        Some(BackendChoice::One(backend)) => {
            let variant = backend.variant();
            quote!(::core::option::Option::Some(#krate::__private::rt::Backend::#variant))
        }
        Some(BackendChoice::All) | None => quote!(::core::option::Option::None),
    };
    let zone = if options.profile {
        profile::zone(&krate, &format!("::{ident}"))
    } else {
        TokenStream::new()
    };
    let attrs = function.outer_attrs();
    let vis = &function.vis;
    let sig = &function.sig;
    let output = function.output();
    let body = function.statements_with(zone);
    quote! {
        #[::core::prelude::v1::test]
        #attrs
        #vis #sig {
            #krate::__private::run_test(#name, #backend, #builder, move || -> #output #body)
        }
    }
}
