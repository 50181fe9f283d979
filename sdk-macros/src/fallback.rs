//! When the trait has mistakes, emit it untouched but for our attributes, next to the errors,
//! and a client type implementing it, so that one mistake does not cascade into "trait not
//! found" or "cannot find type `…Client`" everywhere they are used (as
//! `thiserror/impl/src/fallback.rs` does). The client's bodies are `unreachable!()`: the
//! `compile_error!` beside them means this code is never built into anything.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemTrait, TraitItem};

use crate::attr::{is_ours, METHOD_ATTRS, PARAM_ATTRS};

/// The trait without the SDK's method and parameter attributes.
pub(crate) fn strip(mut item: ItemTrait) -> ItemTrait {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(f) = trait_item {
            f.attrs.retain(|a| !is_ours(a, METHOD_ATTRS));
            for input in &mut f.sig.inputs {
                if let syn::FnArg::Typed(typed) = input {
                    typed.attrs.retain(|a| !is_ours(a, PARAM_ATTRS));
                }
            }
        }
    }
    item
}

pub(crate) fn expand(item: ItemTrait, krate: &syn::Path, error: &syn::Error) -> TokenStream {
    let item = strip(item);
    let errors = error.to_compile_error();
    let (vis, ident) = (&item.vis, &item.ident);
    let client = quote::format_ident!("{}Client", ident);
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let methods = item.items.iter().filter_map(|trait_item| match trait_item {
        TraitItem::Fn(f) => {
            let sig = &f.sig;
            Some(quote! {
                #[allow(unused_variables)]
                #sig { ::core::unreachable!() }
            })
        }
        _ => None,
    });
    // A generic trait is itself one of the mistakes: no impl, which would add its own.
    let implementation = item.generics.params.is_empty().then(|| {
        quote! {
            impl #impl_generics #ident #ty_generics for #client #where_clause {
                #(#methods)*
            }
        }
    });
    quote! {
        #errors
        #[allow(async_fn_in_trait)]
        #item

        #[derive(Clone, Debug)]
        #vis struct #client;

        impl #client {
            /// Stands in while the trait has mistakes.
            pub fn new(_sdk: &#krate::__private::ServiceSdk) -> Self {
                #client
            }
        }

        #implementation
    }
}
