//! `#[loom::profile]`, and the zone every `profile` flag puts first in a
//! body.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{
    Attribute, Block, ImplItem, Item, ItemImpl, ItemMod, ItemTrait, LitStr, Signature, Stmt,
    TraitItem, Type,
};

use crate::item::{FnItem, hygienic, with_errors};
use crate::options::{self, Errors, Macro};

/// `let __loom_zone = <krate>::__private::zone!(concat!(module_path!(), suffix));`
/// — `suffix` is `"::function"` or `"::Type::method"`. The local is
/// hygienic, so neither the body nor a lint can see it.
pub(crate) fn zone(krate: &TokenStream, suffix: &str) -> TokenStream {
    let local = hygienic("__loom_zone");
    let suffix = LitStr::new(suffix, Span::call_site());
    quote! {
        let #local = #krate::__private::zone!(
            ::core::concat!(::core::module_path!(), #suffix)
        );
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let krate = match options::parse(args, Macro::Profile) {
        Ok(options) => options.krate(),
        Err(e) => return with_errors(item, e),
    };
    if let Ok(function) = syn::parse2::<FnItem>(item.clone()) {
        return match profile_fn(function, &krate) {
            Ok(tokens) => tokens,
            Err(e) => with_errors(item, e),
        };
    }
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            let message = format!("#[loom::profile] cannot read this item: {e}");
            return with_errors(item, syn::Error::new(e.span(), message));
        }
    };
    let mut errors = Errors::default();
    let result = match parsed {
        Item::Impl(mut block) => {
            instrument_impl(&mut block, &krate);
            Some(block.into_token_stream())
        }
        Item::Mod(mut module) => {
            if instrument_mod(&mut module, &krate, &mut errors) {
                Some(module.into_token_stream())
            } else {
                None
            }
        }
        Item::Trait(mut trait_) => {
            if instrument_trait(&mut trait_, &krate) {
                Some(trait_.into_token_stream())
            } else {
                errors.error(
                    trait_.ident.span(),
                    format!(
                        "#[loom::profile] has nothing to instrument in trait `{}`: it has no \
                         default method bodies; put #[loom::profile] on the `impl` blocks that \
                         implement it",
                        trait_.ident
                    ),
                );
                None
            }
        }
        other => {
            let (span, what) = describe(&other);
            errors.error(
                span,
                format!(
                    "#[loom::profile] cannot instrument {what}: it adds a zone to function \
                     bodies; put it on a `fn`, an `impl` block or an inline `mod {{ .. }}`"
                ),
            );
            None
        }
    };
    match (errors.finish(), result) {
        (Ok(()), Some(tokens)) => tokens,
        (Err(e), _) => with_errors(item, e),
        (Ok(()), None) => item,
    }
}

/// Checks that the attribute's own function can carry a zone (inside an
/// `impl` or `mod`, `const` and `async` functions are skipped instead).
fn instrumentable(sig: &Signature) -> Result<(), syn::Error> {
    if let Some(token) = &sig.constness {
        return Err(syn::Error::new(
            token.span,
            "#[loom::profile] cannot instrument a `const fn`: it may run at compile time, \
             where there is no profiler; remove the attribute",
        ));
    }
    if let Some(token) = &sig.asyncness {
        return Err(syn::Error::new(
            token.span,
            "#[loom::profile] cannot instrument an `async fn`: its zone would stay open across \
             every `.await`; loom fibers block instead of awaiting — remove `async`",
        ));
    }
    Ok(())
}

fn profile_fn(function: FnItem, krate: &TokenStream) -> syn::Result<TokenStream> {
    instrumentable(&function.sig)?;
    let zone = zone(krate, &format!("::{}", function.sig.ident));
    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    let body = function.body_with(zone);
    Ok(quote!(#(#attrs)* #vis #sig #body))
}

/// Whether an item carries its own `#[loom::profile]` (which then
/// instruments it), so an enclosing one leaves it alone.
fn has_profile_attr(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "profile")
    })
}

fn wants_zone(sig: &Signature, attrs: &[Attribute]) -> bool {
    sig.constness.is_none() && sig.asyncness.is_none() && !has_profile_attr(attrs)
}

fn prepend(block: &mut Block, zone: TokenStream) {
    let stmt: Stmt = syn::parse2(zone).expect("the zone statement parses");
    block.stmts.insert(0, stmt);
}

/// The name a zone gives an impl's self type: `Type` of `path::Type<T>`.
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .map_or_else(String::new, |segment| segment.ident.to_string()),
        Type::Reference(reference) => type_name(&reference.elem),
        Type::Paren(paren) => type_name(&paren.elem),
        Type::Group(group) => type_name(&group.elem),
        other => other
            .to_token_stream()
            .to_string()
            .split_whitespace()
            .collect(),
    }
}

fn instrument_impl(block: &mut ItemImpl, krate: &TokenStream) {
    let type_name = type_name(&block.self_ty);
    for item in &mut block.items {
        if let ImplItem::Fn(function) = item
            && wants_zone(&function.sig, &function.attrs)
        {
            let suffix = format!("::{type_name}::{}", function.sig.ident);
            prepend(&mut function.block, zone(krate, &suffix));
        }
    }
}

/// Instruments the default method bodies; false if there are none.
fn instrument_trait(trait_: &mut ItemTrait, krate: &TokenStream) -> bool {
    let mut any = false;
    for item in &mut trait_.items {
        if let TraitItem::Fn(function) = item
            && let Some(body) = &mut function.default
        {
            any = true;
            if wants_zone(&function.sig, &function.attrs) {
                let suffix = format!("::{}::{}", trait_.ident, function.sig.ident);
                prepend(body, zone(krate, &suffix));
            }
        }
    }
    any
}

/// Instruments an inline module, recursively; false (with an error) for
/// `mod name;`, whose items the attribute cannot see.
fn instrument_mod(module: &mut ItemMod, krate: &TokenStream, errors: &mut Errors) -> bool {
    let Some((_, items)) = &mut module.content else {
        errors.error(
            module.ident.span(),
            format!(
                "#[loom::profile] cannot see into `mod {};` (its items live in another file): \
                 put #[loom::profile] on the functions and `impl` blocks in that file",
                module.ident
            ),
        );
        return false;
    };
    for item in items {
        match item {
            Item::Fn(function) if wants_zone(&function.sig, &function.attrs) => {
                let suffix = format!("::{}", function.sig.ident);
                prepend(&mut function.block, zone(krate, &suffix));
            }
            Item::Impl(block) if !has_profile_attr(&block.attrs) => instrument_impl(block, krate),
            Item::Trait(trait_) if !has_profile_attr(&trait_.attrs) => {
                instrument_trait(trait_, krate);
            }
            Item::Mod(inner) if inner.content.is_some() && !has_profile_attr(&inner.attrs) => {
                instrument_mod(inner, krate, errors);
            }
            _ => {}
        }
    }
    true
}

/// Where to point, and what to call, an item that has no body to profile.
fn describe(item: &Item) -> (Span, &'static str) {
    match item {
        Item::Const(i) => (i.ident.span(), "a `const`"),
        Item::Enum(i) => (i.ident.span(), "an `enum`"),
        Item::ExternCrate(i) => (i.ident.span(), "an `extern crate`"),
        Item::ForeignMod(i) => (
            i.abi.extern_token.span,
            "an `extern` block (its functions have no bodies)",
        ),
        Item::Macro(i) => (
            i.mac
                .path
                .segments
                .first()
                .map_or_else(Span::call_site, |s| s.ident.span()),
            "a macro invocation",
        ),
        Item::Static(i) => (i.ident.span(), "a `static`"),
        Item::Struct(i) => (i.ident.span(), "a `struct`"),
        Item::TraitAlias(i) => (i.ident.span(), "a trait alias"),
        Item::Type(i) => (i.ident.span(), "a type alias"),
        Item::Union(i) => (i.ident.span(), "a `union`"),
        Item::Use(i) => (i.use_token.span, "a `use` declaration"),
        _ => (Span::call_site(), "this item"),
    }
}
