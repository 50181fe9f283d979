//! Generates the trait (methods returning `Send` futures) and its client, which calls the
//! SDK's documented `__private` functions: no macro-only runtime.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
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
    quote! {
        #trait_item

        #[doc = #doc]
        #[derive(Clone, Debug)]
        #vis struct #client {
            client: #private::ServiceClient,
            cache_mode: #private::CacheMode,
            extras: #private::CallExtras,
        }

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
                    extras: #private::CallExtras::default(),
                }
            }

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

            /// Drops every cached answer of this service.
            pub fn clear_cache(&self) {
                self.client.clear_cache();
            }

            /// The ad-hoc client underneath, for calls the trait does not declare.
            pub fn service_client(&self) -> &#private::ServiceClient {
                &self.client
            }
        }

        impl #trait_ident for #client {
            #(#methods)*
        }
    }
}

/// The trait as users implement it: our attributes removed, each `async fn` declared as
/// returning `impl Future + Send` so callers can spawn the futures.
fn trait_with_send_futures(interface: &Interface) -> TokenStream {
    let mut item = fallback::strip(interface.item.clone());
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
    let output = &method.output;
    let http = &method.http;
    let endpoint = &method.path;

    let mut path_code = Vec::new();
    let mut capacity = 0;
    for piece in &method.template {
        match piece {
            Piece::Text(text) => {
                capacity += text.len();
                path_code.push(quote!(__path.push_str(#text);));
            }
            Piece::Param(name) => {
                capacity += 16;
                let arg = format_ident!("{}", name);
                let label = name.to_string();
                path_code.push(quote! {
                    if let ::core::result::Result::Err(e) = #private::push_segment(&mut __path, #label, &#arg) {
                        __error.get_or_insert(e);
                    }
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
            path_code.push(match outer_type(&param.ty) {
                Some("Option") => {
                    quote!(if let ::core::option::Option::Some(__value) = &#arg { #push })
                }
                Some("Vec") => quote!(for __value in &#arg { #push }),
                _ => quote!({ let __value = &#arg; #push }),
            });
        }
    }

    let mut request_code = Vec::new();
    for param in &method.params {
        let arg = &param.ident;
        match &param.kind {
            ParamKind::Header(name) => request_code.push(header(name, quote!(&#arg), private)),
            ParamKind::IdempotencyKey => {
                request_code.push(header("idempotency-key", quote!(&#arg), private))
            }
            ParamKind::Body => request_code.push(quote!(__request = __request.json(&#arg);)),
            _ => {}
        }
    }
    let policies = policies(method, private);
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
                __request = __request.cache_mode(self.cache_mode);
                #policies
                __request = self.extras.apply(__request);
                __request.send::<#output>().await
            }
        }
    }
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
    if let Some(breaker) = &method.breaker {
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
        code.push(quote! {
            const __BREAKER: #private::BreakerConfig = #private::BreakerConfig::DEFAULT #(#fields)*;
            __request = __request.circuit_breaker(&__BREAKER);
        });
    }
    if let Some(cached) = &method.cached {
        let ttl = nanos(cached.ttl);
        let vary = &cached.vary_on;
        code.push(quote! {
            __request = __request
                .cache_ttl(::core::time::Duration::from_nanos(#ttl))
                .vary_on({
                    const __VARY: &[&str] = &[#(#vary),*];
                    __VARY
                });
        });
    }
    if method.idempotent.is_some() {
        code.push(quote!(__request = __request.idempotent(true);));
    }
    quote!(#(#code)*)
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
