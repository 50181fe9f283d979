//! Generates the trait (methods returning `Send` futures) and its client, which calls the
//! SDK's documented `__private` functions: no macro-only runtime.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ReturnType, TraitItem, Type};

use crate::{
    ast::{Interface, Method, ParamKind, Piece},
    attr::{is_ours, PARAM_ATTRS},
    fallback,
};

pub(crate) fn expand(interface: &Interface) -> TokenStream {
    let krate = &interface.krate;
    let private = quote!(#krate::__private);
    let trait_item = trait_with_send_futures(interface);
    let vis = &interface.item.vis;
    let trait_ident = &interface.item.ident;
    let client = format_ident!("{}Client", trait_ident);
    let service = &interface.service;
    let doc = format!(
        "The generated client of [`{trait_ident}`]: every method calls the `{}` service through the \
         SDK's pipeline (cache, deadline, retry, circuit breaker, load balancing).",
        service.value()
    );
    let methods = interface.methods.iter().map(|m| method_impl(m, &private));
    let inherent = client_methods(interface, &client, &private);
    let views = client_views(&client, &private);
    quote! {
        #trait_item

        #[doc = #doc]
        #[derive(Clone, Debug)]
        #vis struct #client {
            client: #private::ServiceClient,
            cache_mode: #private::CacheMode,
            extras: #private::CallExtras,
        }

        #inherent

        #views

        impl #trait_ident for #client {
            #(#methods)*
        }
    }
}

/// The client's own methods: constructors, cache control, the ad-hoc client.
fn client_methods(
    interface: &Interface,
    client: &syn::Ident,
    private: &TokenStream,
) -> TokenStream {
    let service = &interface.service;
    let extras = match &interface.version {
        Some(version) => quote!(#private::CallExtras::default().with_version_requirement(#version)),
        None => quote!(#private::CallExtras::default()),
    };
    quote! {
        impl #client {
            /// The service this client calls.
            pub const SERVICE: &'static str = #service;

            /// A client calling the service through `sdk`'s pipeline. Cheap to clone.
            pub fn new(sdk: &#private::ServiceSdk) -> Self {
                Self::with_service(sdk, #service)
            }

            /// A client of the same interface served under another name (another
            /// deployment, a `-v2` service), with that service's configuration.
            pub fn with_service(sdk: &#private::ServiceSdk, service: &str) -> Self {
                #client {
                    client: sdk.get_client(service),
                    cache_mode: #private::CacheMode::Default,
                    extras: #extras,
                }
            }

            /// Drops every cached answer of this service.
            pub fn clear_cache(&self) {
                self.client.clear_cache();
            }

            /// Drops the answers cached under `key`: one a `#[cached(key = ...)]` function
            /// returned, or a GET path with its query.
            pub fn clear_cache_key(&self, key: &str) {
                self.client.clear_cache_key(key);
            }

            /// The ad-hoc client underneath, for calls the trait does not declare.
            pub fn service_client(&self) -> &#private::ServiceClient {
                &self.client
            }
        }
    }
}

/// The client's views: copies whose calls differ in one way (`fresh`, `with_timeout`,
/// `with_header`, `with_version`).
fn client_views(client: &syn::Ident, private: &TokenStream) -> TokenStream {
    quote! {
        impl #client {
            /// A view of this client whose calls skip the cache lookup and store the fresh
            /// answers.
            pub fn fresh(&self) -> Self {
                #client {
                    client: self.client.clone(),
                    cache_mode: #private::CacheMode::Refresh,
                    extras: self.extras.clone(),
                }
            }

            /// A view of this client whose calls must finish within `timeout` (across
            /// retries), instead of the method's `#[timeout]` or the service's.
            pub fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                #client {
                    client: self.client.clone(),
                    cache_mode: self.cache_mode,
                    extras: self.extras.with_timeout(timeout),
                }
            }

            /// A view of this client whose calls carry this header too (replacing the
            /// service's default of that name; secret ones are never printed).
            pub fn with_header(
                &self,
                name: #private::HeaderName,
                value: #private::HeaderValue,
            ) -> Self {
                #client {
                    client: self.client.clone(),
                    cache_mode: self.cache_mode,
                    extras: self.extras.with_header(name, value),
                }
            }

            /// A view of this client whose calls go only to instances `selector` allows
            /// (a requirement such as `^1`, or a weighted split), instead of the interface's
            /// `version` or the service's.
            pub fn with_version(&self, selector: #private::VersionSelector) -> Self {
                #client {
                    client: self.client.clone(),
                    cache_mode: self.cache_mode,
                    extras: self.extras.with_versions(selector),
                }
            }
        }
    }
}

/// The trait as users implement it: our attributes removed, each `async fn` declared as
/// returning `impl Future + Send` so callers can spawn the futures.
fn trait_with_send_futures(interface: &Interface) -> TokenStream {
    send_futures(fallback::strip(interface.item.clone()))
}

/// `item` with each `async fn` declared as returning `impl Future + Send` (for both
/// interface macros).
pub(crate) fn send_futures(mut item: syn::ItemTrait) -> TokenStream {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(f) = trait_item {
            f.sig.asyncness = None;
            if let ReturnType::Type(arrow, ty) = &f.sig.output {
                let output: Type = syn::parse_quote! {
                    impl ::core::future::Future<Output = #ty> + ::core::marker::Send
                };
                f.sig.output = ReturnType::Type(*arrow, Box::new(output));
            }
        }
    }
    quote!(#item)
}

fn method_impl(method: &Method, private: &TokenStream) -> TokenStream {
    let docs = &method.docs;
    let sig = &method.item.sig;
    let ident = &sig.ident;
    let inputs = sig.inputs.iter().map(|input| match input {
        FnArg::Typed(typed) => {
            let mut typed = typed.clone();
            typed.attrs.retain(|a| !is_ours(a, PARAM_ATTRS));
            quote!(#typed)
        }
        receiver => quote!(#receiver),
    });
    let ReturnType::Type(_, ret) = &sig.output else {
        return TokenStream::new();
    };
    let http = &method.http;
    let endpoint = &method.path;

    let (path_code, capacity) = path_code(method, private);
    let request_code = request_code(method, private);
    let policies = policies(method, private);
    let send = send(method, private);
    quote! {
        #(#docs)*
        fn #ident(#(#inputs),*) -> impl ::core::future::Future<Output = #ret> + ::core::marker::Send {
            async move {
                let mut __error: ::core::option::Option<::std::string::String> = ::core::option::Option::None;
                let mut __path = ::std::string::String::with_capacity(#capacity);
                #(#path_code)*
                let mut __request = #private::request(
                    &self.client,
                    #private::Method::#http,
                    __path,
                    #endpoint,
                );
                #(#request_code)*
                if let ::core::option::Option::Some(e) = __error {
                    #private::fail(&mut __request, e);
                }
                #private::set_cache_mode(&mut __request, self.cache_mode);
                #policies
                self.extras.apply(&mut __request);
                #send
            }
        }
    }
}

/// The statements that build the path (its template's text and segments, then the query
/// arguments), and the capacity to reserve for it.
fn path_code(method: &Method, private: &TokenStream) -> (Vec<TokenStream>, usize) {
    let mut code = Vec::new();
    let mut capacity = 0;
    for piece in &method.template {
        match piece {
            Piece::Text(text) => {
                capacity += text.len();
                code.push(quote!(__path.push_str(#text);));
            }
            Piece::Param(name) => {
                capacity += 16;
                let arg = format_ident!("{}", name);
                let label = name.to_string();
                let integer = method
                    .params
                    .iter()
                    .any(|p| p.ident == arg && is_primitive_integer(&p.ty));
                code.push(match integer {
                    // Digits need no encoding and no check: written without the formatter.
                    true => quote!(#private::push_digits(&mut __path, #arg);),
                    false => quote! {
                        if let ::core::result::Result::Err(e) = #private::push_segment(&mut __path, #label, &#arg) {
                            __error.get_or_insert(e);
                        }
                    },
                });
            }
        }
    }
    for param in &method.params {
        if let ParamKind::Query(name) = &param.kind {
            let arg = &param.ident;
            let push = quote! {
                if let ::core::result::Result::Err(e) = #private::push_query(&mut __path, #name, __value) {
                    __error.get_or_insert(e);
                }
            };
            code.push(match outer_type(&param.ty) {
                Some("Option") => {
                    quote!(if let ::core::option::Option::Some(__value) = &#arg { #push })
                }
                Some("Vec") => quote!(for __value in &#arg { #push }),
                _ => quote!({ let __value = &#arg; #push }),
            });
        }
    }
    (code, capacity)
}

/// The statements that put the header, idempotency-key and body arguments on the request.
fn request_code(method: &Method, private: &TokenStream) -> Vec<TokenStream> {
    let mut code = Vec::new();
    for param in &method.params {
        let arg = &param.ident;
        match &param.kind {
            ParamKind::Header(name) => code.push(header(name, quote!(&#arg), private)),
            ParamKind::IdempotencyKey => {
                code.push(header("idempotency-key", quote!(&#arg), private))
            }
            ParamKind::Body => code.push(quote!(__request = __request.json(&#arg);)),
            _ => {}
        }
    }
    code
}

fn header(name: &str, value: TokenStream, private: &TokenStream) -> TokenStream {
    quote! {
        match #private::header_value(#name, #value) {
            ::core::result::Result::Ok(v) => __request = __request.header(#name, v),
            ::core::result::Result::Err(e) => {
                __error.get_or_insert(e);
            }
        }
    }
}

fn nanos(d: std::time::Duration) -> Literal {
    Literal::u64_suffixed(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn policies(method: &Method, private: &TokenStream) -> TokenStream {
    let mut code = Vec::new();
    if let Some(timeout) = method.timeout {
        let n = nanos(timeout);
        code.push(quote!(__request = __request.timeout(::core::time::Duration::from_nanos(#n));));
    }
    if let Some(retry) = &method.retry {
        let attempts = retry.max_attempts;
        let delay = nanos(retry.delay);
        let backoff = Literal::f64_suffixed(retry.backoff);
        code.push(quote! {
            const __RETRY: #private::RetryOverride = #private::RetryOverride::new(
                #attempts,
                ::core::time::Duration::from_nanos(#delay),
                #backoff,
            );
            __request = __request.retry_policy(&__RETRY);
        });
    }
    if let Some(hedge) = &method.hedge {
        code.push(hedge_policy(hedge, private));
    }
    if let Some(breaker) = &method.breaker {
        code.push(breaker_policy(breaker, private));
    }
    if let Some(cached) = &method.cached {
        code.extend(cache_policy(method, cached));
    }
    if method.idempotent.is_some() {
        code.push(quote!(__request = __request.idempotent(true);));
    }
    quote!(#(#code)*)
}

fn hedge_policy(hedge: &crate::attr::Hedge, private: &TokenStream) -> TokenStream {
    let after = match (hedge.percentile, hedge.delay) {
        (Some(p), _) => {
            let p = Literal::f64_suffixed(p);
            quote!(#private::HedgeAfter::Percentile(#p))
        }
        (None, delay) => {
            let n = nanos(delay.unwrap_or_default());
            quote!(#private::HedgeAfter::Fixed(::core::time::Duration::from_nanos(#n)))
        }
    };
    let (max, min_samples) = (hedge.max, hedge.min_samples);
    quote! {
        const __HEDGE: #private::HedgeConfig = #private::HedgeConfig::DEFAULT
            .after(#after)
            .max(#max)
            .min_samples(#min_samples);
        __request = __request.hedge(&__HEDGE);
    }
}

fn breaker_policy(breaker: &crate::attr::Breaker, private: &TokenStream) -> TokenStream {
    let mut fields = Vec::new();
    if let Some(n) = breaker.failure_threshold {
        fields.push(quote!(.failure_threshold(#n)));
    }
    if let Some(n) = breaker.success_threshold {
        fields.push(quote!(.success_threshold(#n)));
    }
    if let Some(d) = breaker.recovery_timeout {
        let n = nanos(d);
        fields.push(quote!(.open_duration(::core::time::Duration::from_nanos(#n))));
    }
    quote! {
        const __BREAKER: #private::BreakerConfig = #private::BreakerConfig::DEFAULT #(#fields)*;
        __request = __request.circuit_breaker(&__BREAKER);
    }
}

fn cache_policy(method: &Method, cached: &crate::attr::Cached) -> Vec<TokenStream> {
    let ttl = nanos(cached.ttl);
    let vary = &cached.vary_on;
    let mut code = vec![quote! {
        __request = __request
            .cache_ttl(::core::time::Duration::from_nanos(#ttl))
            .vary_on({
                const __VARY: &[&str] = &[#(#vary),*];
                __VARY
            });
    }];
    if let Some(key) = &cached.key {
        let args = method.params.iter().map(|p| &p.ident);
        code.push(quote_spanned! {key.span()=>
            __request = __request.cache_key(#key(#(&#args),*));
        });
    }
    if let Some(ttl) = cached.cache_on_error {
        let n = nanos(ttl);
        code.push(quote! {
            __request = __request.cache_on_error(::core::time::Duration::from_nanos(#n));
        });
    }
    code
}

/// Sends the request; with `#[fallback]`, a failure the fallback takes over goes to it, with
/// the method's arguments and the error.
fn send(method: &Method, private: &TokenStream) -> TokenStream {
    let output = &method.output;
    let Some(fallback) = &method.fallback else {
        return quote!(__request.send::<#output>().await);
    };
    let on = match fallback.on.as_slice() {
        [] => quote!(#private::FallbackOn::DEFAULT),
        causes => {
            let consts = causes
                .iter()
                .map(|c| format_ident!("{}", c.to_string().to_uppercase()));
            quote!(#private::FallbackOn::NONE #(.or(#private::FallbackOn::#consts))*)
        }
    };
    let function = &fallback.function;
    let args = method.params.iter().map(|p| &p.ident);
    // `Self::name` is a method the user added to the generated client: it gets `&self` too.
    let receiver = function
        .segments
        .first()
        .filter(|s| s.ident == "Self" && function.segments.len() > 1)
        .map(|_| quote!(self,));
    // Spanned at the function's path, so a signature that does not fit is reported there.
    let call = quote_spanned! {function.span()=> #function(#receiver #(#args,)* __error).await };
    quote! {
        const __FALLBACK_ON: #private::FallbackOn = #on;
        match #private::fallback_on(__request, __FALLBACK_ON).send::<#output>().await {
            ::core::result::Result::Err(__error) if __FALLBACK_ON.matches(&__error) => #call,
            __result => __result,
        }
    }
}

/// Whether `ty` is spelled as a primitive integer (`u64`, `i32`, ...): its path segment is
/// then written as digits. An alias of one takes the `Display` path, as any other type.
fn is_primitive_integer(ty: &Type) -> bool {
    const INTEGERS: [&str; 12] = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
    ];
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .get_ident()
            .is_some_and(|ident| INTEGERS.iter().any(|name| ident == name)),
        _ => false,
    }
}

/// `Option` or `Vec` when the type is written as one (aliases are not seen through).
fn outer_type(ty: &Type) -> Option<&'static str> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident == "Option" {
        Some("Option")
    } else if last.ident == "Vec" {
        Some("Vec")
    } else {
        None
    }
}
