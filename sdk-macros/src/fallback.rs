//! When the trait has mistakes, emit it untouched but for our attributes, next to the errors,
//! so that one mistake does not cascade into "trait not found" everywhere it is used (as
//! `thiserror/impl/src/fallback.rs` does).

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

pub(crate) fn expand(item: ItemTrait, error: &syn::Error) -> TokenStream {
    let item = strip(item);
    let errors = error.to_compile_error();
    quote! {
        #errors
        #[allow(async_fn_in_trait)]
        #item
    }
}
