//! A function whose body stays raw tokens: the macros rewrite signatures
//! and never need to understand the statements (tokio's `entry.rs` shape),
//! which keeps expansion cheap and IDE completion inside bodies intact.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, ReturnType, Signature, Visibility, braced, token};

pub(crate) struct FnItem {
    /// Outer attributes (doc comments, `#[allow]`, ...), in order.
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    pub brace: token::Brace,
    /// `#![...]` at the top of the body.
    pub inner_attrs: Vec<Attribute>,
    /// The statements, unparsed.
    pub body: TokenStream,
}

impl Parse for FnItem {
    fn parse(input: ParseStream) -> syn::Result<FnItem> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body: TokenStream = content.parse()?;
        Ok(FnItem {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

impl FnItem {
    /// Parses `item`, or explains that `attr` goes on a function.
    pub(crate) fn parse_for(item: TokenStream, attr: &str) -> syn::Result<FnItem> {
        syn::parse2::<FnItem>(item.clone()).map_err(|e| {
            let span = item
                .into_iter()
                .find(|tt| !matches!(tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == '#'))
                .map_or_else(|| e.span(), |tt| tt.span());
            syn::Error::new(
                span,
                format!("{attr} goes on a function with a body: `fn name(..) {{ .. }}`"),
            )
        })
    }

    /// The body with `prologue` in front of the statements, inner
    /// attributes kept at the top.
    pub(crate) fn body_with(&self, prologue: TokenStream) -> TokenStream {
        let inner = &self.inner_attrs;
        let body = &self.body;
        let mut block = TokenStream::new();
        self.brace.surround(&mut block, |tokens| {
            tokens.extend(quote!(#(#inner)* #prologue #body));
        });
        block
    }

    /// The body with `prologue` in front, inner attributes dropped (the
    /// caller moved them onto the function with [`FnItem::outer_attrs`]).
    pub(crate) fn statements_with(&self, prologue: TokenStream) -> TokenStream {
        let body = &self.body;
        let mut block = TokenStream::new();
        self.brace.surround(&mut block, |tokens| {
            tokens.extend(quote!(#prologue #body));
        });
        block
    }

    /// The outer attributes followed by the inner ones turned outer:
    /// `fn f() { #![allow(x)] .. }` means `#[allow(x)] fn f() { .. }`, and
    /// a body moved into a closure cannot keep inner attributes.
    pub(crate) fn outer_attrs(&self) -> TokenStream {
        let mut tokens = TokenStream::new();
        for attr in &self.attrs {
            attr.to_tokens(&mut tokens);
        }
        for attr in &self.inner_attrs {
            let pound = &attr.pound_token;
            let meta = &attr.meta;
            let mut group = TokenStream::new();
            attr.bracket_token
                .surround(&mut group, |inside| meta.to_tokens(inside));
            tokens.extend(quote!(#pound #group));
        }
        tokens
    }

    /// The return type, `()` if none was written.
    pub(crate) fn output(&self) -> TokenStream {
        match &self.sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, ty) => quote!(#ty),
        }
    }
}

impl ToTokens for FnItem {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for attr in &self.attrs {
            attr.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        tokens.extend(self.body_with(TokenStream::new()));
    }
}

/// A local only the expansion can name.
pub(crate) fn hygienic(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The original item followed by the errors: the item keeps IDE completion
/// and type checking working while the attribute is wrong.
pub(crate) fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.into_compile_error();
    quote!(#item #errors)
}
