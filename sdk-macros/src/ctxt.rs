//! Collects every error found in one trait, so the user sees them all at once (as serde's
//! `internals/ctxt.rs` does).

use std::cell::RefCell;

use quote::ToTokens;

#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    /// An error pointing at `tokens`.
    pub(crate) fn error(&self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// An error syn already made (it carries its own span).
    pub(crate) fn syn(&self, error: syn::Error) {
        self.errors.borrow_mut().push(error);
    }

    /// All errors, combined, if there were any.
    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        let mut errors = self.errors.into_inner().into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                for e in errors {
                    first.combine(e);
                }
                Err(first)
            }
        }
    }
}
