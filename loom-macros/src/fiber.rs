//! `#[loom::fiber]`: calling the function spawns its body as a fiber on the
//! current loop and returns `loom::JoinHandle<R>`.
//!
//! ```text
//! #[loom::fiber(name = "conn")]
//! fn handle(mut stream: TcpStream, (a, b): (u8, u8)) -> io::Result<()> { body }
//! // becomes
//! #[track_caller]
//! fn handle(stream: TcpStream, __loom_arg1: (u8, u8)) -> loom::JoinHandle<io::Result<()>> {
//!     loom::__private::spawn_fiber("conn", None, move || -> io::Result<()> {
//!         let mut stream = stream;
//!         let __loom_arg1 = __loom_arg1;
//!         let (a, b) = __loom_arg1;
//!         body
//!     })
//! }
//! ```
//!
//! Every argument is rebound inside the closure so the closure captures it
//! whole (a closure that only touches `stream.fd` would otherwise capture
//! just that field and drop the rest when the caller returns) and so it
//! is dropped when the fiber ends, after the body's locals, as a function's
//! arguments are.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::{
    FnArg, GenericArgument, GenericParam, Pat, PathArguments, ReceiverKind, ReturnType, Type,
    TypeParamBound,
};

use crate::item::{FnItem, hygienic, with_errors};
use crate::options::{self, Errors, Macro};
use crate::profile;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = options::parse(args, Macro::Fiber)
        .map_err(|e| errors.push(e))
        .ok();
    let function = match FnItem::parse_for(item.clone(), Macro::Fiber.attr()) {
        Ok(function) => function,
        Err(e) => {
            errors.push(e);
            return with_errors(item, errors.finish().unwrap_err());
        }
    };
    check(&function, &mut errors);
    match (errors.finish(), options) {
        (Ok(()), Some(options)) => expand_checked(&function, &options),
        (Err(e), _) => with_errors(item, e),
        (Ok(()), None) => unreachable!("option errors are collected"),
    }
}

fn expand_checked(function: &FnItem, options: &options::Options) -> TokenStream {
    let krate = options.krate();
    let sig = &function.sig;
    let ident = &sig.ident;
    let name = options
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), |name| name.value.clone());
    let stack_size = match &options.stack_size {
        Some(bytes) => {
            let bytes = proc_macro2::Literal::usize_unsuffixed(bytes.value);
            quote!(::core::option::Option::Some(#bytes))
        }
        None => quote!(::core::option::Option::None),
    };
    let mut inputs = Vec::new();
    // The zone, if any, is the fiber's first statement, so it also covers
    // dropping the arguments when the body ends.
    let mut prologue = if options.profile {
        profile::zone(&krate, &format!("::{ident}"))
    } else {
        TokenStream::new()
    };
    for (index, arg) in sig.inputs.iter().enumerate() {
        match arg {
            FnArg::Receiver(receiver) => {
                // `self` cannot be rebound; borrowing it whole in a `move`
                // closure makes the closure capture all of it.
                let self_token = &receiver.self_token;
                prologue.extend(quote!(let _ = &#self_token;));
                inputs.push(receiver.to_token_stream());
            }
            FnArg::Typed(typed) => {
                let attrs = &typed.attrs;
                let ty = &typed.ty;
                match &*typed.pat {
                    Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => {
                        let name = &binding.ident;
                        let mutability = &binding.mutability;
                        inputs.push(quote!(#(#attrs)* #name: #ty));
                        prologue.extend(quote!(#(#attrs)* let #mutability #name = #name;));
                    }
                    pattern => {
                        let arg = hygienic(&format!("__loom_arg{index}"));
                        inputs.push(quote!(#(#attrs)* #arg: #ty));
                        prologue.extend(quote! {
                            #(#attrs)* let #arg = #arg;
                            #(#attrs)* let #pattern = #arg;
                        });
                    }
                }
            }
        }
    }
    let attrs = function.outer_attrs();
    let track_caller = if function
        .attrs
        .iter()
        .any(|a| a.path().is_ident("track_caller"))
    {
        TokenStream::new()
    } else {
        quote!(#[track_caller])
    };
    let vis = &function.vis;
    let safety = &sig.safety;
    let fn_token = &sig.fn_token;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let output = function.output();
    let body = function.statements_with(prologue);
    quote! {
        #attrs
        #track_caller
        #vis #safety #fn_token #ident #generics (#(#inputs),*) -> #krate::JoinHandle<#output>
        #where_clause
        {
            #krate::__private::spawn_fiber(#name, #stack_size, move || -> #output #body)
        }
    }
}

/// The signature errors: what a spawned body cannot be or borrow.
fn check(function: &FnItem, errors: &mut Errors) {
    let sig = &function.sig;
    if let Some(token) = &sig.asyncness {
        errors.error(
            token.span,
            "#[loom::fiber] functions are plain functions: remove `async` (a blocking call \
             inside a fiber suspends only that fiber, so there is nothing to `.await`)",
        );
    }
    if let Some(token) = &sig.constness {
        errors.error(
            token.span,
            "a #[loom::fiber] spawns a fiber when called, which cannot happen at compile time: \
             remove `const`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.error(
            abi.extern_token.span,
            "a #[loom::fiber] is called from Rust and returns a `loom::JoinHandle`: remove the \
             `extern` ABI (wrap it in an `extern` function that calls this one if C needs it)",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.error(
            variadic.dots.spans[0],
            "a #[loom::fiber] cannot be variadic: take a `Vec` of the arguments",
        );
    }
    for param in &sig.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            errors.push(syn::Error::new_spanned(
                lifetime,
                format!(
                    "a fiber outlives its caller, so a #[loom::fiber] cannot borrow: remove the \
                     lifetime parameter `{}` and take owned arguments",
                    lifetime.lifetime
                ),
            ));
        }
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => match &receiver.kind {
                ReceiverKind::Reference(_, _, mutability) => {
                    let written = if mutability.is_some() {
                        "&mut self"
                    } else {
                        "&self"
                    };
                    errors.push(syn::Error::new_spanned(
                        receiver,
                        format!(
                            "a fiber outlives the call, so a #[loom::fiber] method takes `self` \
                             by value, not `{written}`: write `self` (call it on a clone, or \
                             on an `Rc<Self>` with `self: Rc<Self>`)"
                        ),
                    ));
                }
                ReceiverKind::Typed(_, ty) => {
                    if let Some((tokens, _)) = borrow_in(ty) {
                        errors.push(syn::Error::new_spanned(
                            tokens,
                            "a fiber outlives the call, so a #[loom::fiber] method takes `self` \
                             by value, not by reference: write `self`, `self: Box<Self>` or \
                             `self: Rc<Self>`",
                        ));
                    }
                }
                _ => {}
            },
            FnArg::Typed(typed) => {
                if let Some((tokens, owned)) = borrow_in(&typed.ty) {
                    errors.push(syn::Error::new_spanned(
                        tokens,
                        format!(
                            "a fiber outlives its caller, so the arguments of a #[loom::fiber] \
                             must be `'static`: take {owned}"
                        ),
                    ));
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Type::ImplTrait(impl_trait) = &**ty {
            errors.push(syn::Error::new_spanned(
                impl_trait,
                "the result of a #[loom::fiber] is kept in its `JoinHandle<T>`, which needs a \
                 named type: replace `impl Trait` with the concrete type or a `Box<dyn Trait>`",
            ));
        } else if let Some((tokens, owned)) = borrow_in(ty) {
            errors.push(syn::Error::new_spanned(
                tokens,
                format!(
                    "the result of a #[loom::fiber] outlives the call and must be `'static`: \
                     return {owned}"
                ),
            ));
        }
    }
}

/// The first borrow (a reference or a lifetime other than `'static`) in
/// `ty`: the tokens to point at, and what to take instead.
fn borrow_in(ty: &Type) -> Option<(TokenStream, String)> {
    match ty {
        Type::Reference(reference) => {
            let is_static = reference
                .lifetime
                .as_ref()
                .is_some_and(|lifetime| lifetime.ident == "static");
            if !is_static {
                return Some((reference.to_token_stream(), owned_for(reference)));
            }
            borrow_in(&reference.elem)
        }
        Type::Path(path) => {
            if let Some(qself) = &path.qself
                && let Some(found) = borrow_in(&qself.ty)
            {
                return Some(found);
            }
            path.path
                .segments
                .iter()
                .find_map(|segment| borrow_in_arguments(&segment.arguments, ty))
        }
        Type::Array(array) => borrow_in(&array.elem),
        Type::Slice(slice) => borrow_in(&slice.elem),
        Type::Paren(paren) => borrow_in(&paren.elem),
        Type::Group(group) => borrow_in(&group.elem),
        Type::Ptr(ptr) => borrow_in(&ptr.elem),
        Type::Tuple(tuple) => tuple.elems.iter().find_map(borrow_in),
        Type::TraitObject(object) => borrow_in_bounds(object.bounds.iter(), ty),
        Type::ImplTrait(impl_trait) => borrow_in_bounds(impl_trait.bounds.iter(), ty),
        // `fn(&str)` is a `'static` type: its lifetimes are its own.
        _ => None,
    }
}

fn borrow_in_arguments(arguments: &PathArguments, whole: &Type) -> Option<(TokenStream, String)> {
    let PathArguments::AngleBracketed(arguments) = arguments else {
        // `Fn(&str) -> &str` sugar binds its own lifetimes.
        return None;
    };
    arguments.args.iter().find_map(|argument| match argument {
        GenericArgument::Lifetime(lifetime) if lifetime.ident != "static" => Some((
            lifetime.to_token_stream(),
            format!(
                "a type that owns its data instead of `{}`, which borrows",
                render(whole.to_token_stream())
            ),
        )),
        GenericArgument::Type(ty) => borrow_in(ty),
        GenericArgument::AssocType(assoc) => borrow_in(&assoc.ty),
        _ => None,
    })
}

fn borrow_in_bounds<'a>(
    mut bounds: impl Iterator<Item = &'a TypeParamBound>,
    whole: &Type,
) -> Option<(TokenStream, String)> {
    bounds.find_map(|bound| match bound {
        TypeParamBound::Lifetime(lifetime) if lifetime.ident != "static" => Some((
            lifetime.to_token_stream(),
            format!(
                "a `'static` trait object instead of `{}`",
                render(whole.to_token_stream())
            ),
        )),
        TypeParamBound::Trait(trait_bound) => trait_bound
            .path
            .segments
            .iter()
            .find_map(|segment| borrow_in_arguments(&segment.arguments, whole)),
        _ => None,
    })
}

/// What to take instead of the reference `reference`.
fn owned_for(reference: &syn::TypeReference) -> String {
    let written = render(reference.to_token_stream());
    let elem = render(reference.elem.to_token_stream());
    let owned = match elem.as_str() {
        "str" => "String".to_owned(),
        "Path" | "std::path::Path" => "PathBuf".to_owned(),
        "OsStr" | "std::ffi::OsStr" => "OsString".to_owned(),
        "CStr" | "std::ffi::CStr" => "CString".to_owned(),
        _ => match &*reference.elem {
            Type::Slice(slice) => format!("Vec<{}>", render(slice.elem.to_token_stream())),
            _ if reference.mutability.is_some() => {
                return format!(
                    "an owned `{elem}` instead of `{written}` (an `Rc<RefCell<{elem}>>` if the \
                     caller needs it back)"
                );
            }
            _ => {
                return format!(
                    "an owned `{elem}` instead of `{written}` (an `Rc<{elem}>` to share it)"
                );
            }
        },
    };
    format!("`{owned}` instead of `{written}`")
}

/// Tokens as a person writes them: `Vec<&'a str>`, not `Vec < & 'a str >`.
fn render(tokens: TokenStream) -> String {
    let mut out = String::new();
    let mut after_word = false;
    for token in tokens {
        match token {
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                if after_word {
                    out.push(' ');
                }
                out.push_str(&token.to_string());
                after_word = true;
            }
            TokenTree::Punct(punct) => {
                match punct.as_char() {
                    ',' => out.push_str(", "),
                    '+' => out.push_str(" + "),
                    '=' => out.push_str(" = "),
                    '-' if punct.spacing() == Spacing::Joint => out.push_str(" -"),
                    '>' if out.ends_with(" -") => out.push_str("> "),
                    '\'' if after_word => out.push_str(" '"),
                    other => out.push(other),
                }
                after_word = false;
            }
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                if after_word && group.delimiter() == Delimiter::None {
                    out.push(' ');
                }
                out.push_str(open);
                out.push_str(&render(group.stream()));
                out.push_str(close);
                after_word = group.delimiter() == Delimiter::None;
            }
        }
    }
    out
}
