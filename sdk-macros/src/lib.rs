#![doc = include_str!("../README.md")]
//!
//! # The crate
//!
//! Typed clients from an annotated trait, for the `sdk` crate (which re-exports these macros;
//! see its documentation for examples).
//!
//! `#[service_interface]` reads the trait into a model (`ast`), checks it (`valid`), and
//! generates the trait with `Send` futures plus a `…Client` implementing it (`expand`). Every
//! mistake is reported at the token that causes it, all at once, with the trait still emitted
//! so that one mistake does not cascade (`fallback`).

mod args;
mod ast;
mod attr;
mod ctxt;
mod duration;
mod expand;
mod fallback;
mod message;
mod valid;

use proc_macro::TokenStream;

/// Turns a trait into a service contract and generates `<Trait>Client` implementing it.
///
/// `#[service_interface(name = "user-service", base_path = "/api/v1")]`; each method is an
/// `async fn(&self, ...) -> ServiceResult<T>` with `#[service_call(METHOD, "/path/<param>")]`.
#[proc_macro_attribute]
pub fn service_interface(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::ItemTrait>(input) {
        Ok(item) => item,
        Err(_) => {
            return syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[service_interface] goes on a trait: `pub trait UserService { ... }`",
            )
            .to_compile_error()
            .into()
        }
    };
    let args = match args::parse(args.into()) {
        Ok(args) => args,
        Err(e) => return fallback::expand(item, &syn::parse_quote!(::sdk), &e).into(),
    };
    let krate = args.krate.clone();
    let cx = ctxt::Ctxt::default();
    let interface = ast::Interface::from_syn(args, item.clone(), &cx);
    valid::check(&interface, &cx);
    match cx.finish() {
        Ok(()) => expand::expand(&interface).into(),
        Err(e) => fallback::expand(item, &krate, &e).into(),
    }
}

/// Turns a trait of message patterns into a contract: generates `<Trait>Client` (sends
/// each method's message over a messaging connection) and `<Trait>Handlers` (registers an
/// implementation of the trait on a message server). Re-exported by `sdk-messaging`, whose
/// documentation has the examples.
#[proc_macro_attribute]
pub fn message_interface(args: TokenStream, input: TokenStream) -> TokenStream {
    match syn::parse::<syn::ItemTrait>(input) {
        Ok(item) => message::expand(args.into(), item).into(),
        Err(_) => syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[message_interface] goes on a trait: `pub trait Users { ... }`",
        )
        .to_compile_error()
        .into(),
    }
}

macro_rules! method_attribute {
    ($(#[doc = $doc:literal] $name:ident),* $(,)?) => {
        $(
            #[doc = $doc]
            ///
            /// Read by `#[service_interface]`; on its own it only reports where it belongs.
            #[proc_macro_attribute]
            pub fn $name(_args: TokenStream, input: TokenStream) -> TokenStream {
                let message = concat!(
                    "#[", stringify!($name), "] belongs on a method of a #[service_interface] or #[message_interface] trait"
                );
                let mut out: TokenStream =
                    syn::Error::new(proc_macro2::Span::call_site(), message).to_compile_error().into();
                out.extend(input);
                out
            }
        )*
    };
}

method_attribute! {
    /// `#[service_call(GET, "/users/<id>")]`: the HTTP method and path of a trait method.
    service_call,
    /// `#[retry(max_attempts = 3, delay = "100ms", backoff = 2.0)]`: this method's retries.
    retry,
    /// `#[circuit_breaker(failure_threshold = 3, success_threshold = 2, recovery_timeout = "30s")]`.
    circuit_breaker,
    /// `#[cached(ttl = "5m", vary_on = ["accept-language"])]`: cache this GET's answers.
    cached,
    /// `#[timeout("2s")]`: this method's deadline, across retries.
    timeout,
    /// `#[idempotent]`: this POST or PATCH may be retried (the server deduplicates).
    idempotent,
    /// `#[hedge(after = "p95", max = 1)]`: a slow call gets a second attempt at another instance.
    hedge,
    /// `#[fallback(path::to::function)]`: what the method answers when the call fails (`on = [...]` to choose).
    fallback,
    /// `#[message_pattern("user.create")]`: a request this method sends (and its handler answers).
    message_pattern,
    /// `#[event_pattern("user.created")]`: an event this method emits (and its handler handles).
    event_pattern,
}
