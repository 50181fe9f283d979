//! `#[message_interface]`: a trait of message patterns, its client and its handlers.
//!
//! The same pipeline as `#[service_interface]`, smaller: read the trait into a model (one
//! method per pattern, at most one payload argument), check it with spanned errors, and
//! generate the trait with `Send` futures, `<Trait>Client` (sends over a messaging
//! connection) and `<Trait>Handlers` (registers an implementation of the trait on a
//! server). Generated code calls `::sdk_messaging::__private` only.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{
    meta::ParseNestedMeta, FnArg, ItemTrait, LitStr, Pat, ReturnType, TraitItem, TraitItemFn, Type,
};

use crate::{ctxt::Ctxt, duration};

/// The attributes this macro owns on methods.
const ATTRS: &[&str] = &["message_pattern", "event_pattern", "timeout", "idempotent"];

struct Args {
    krate: syn::Path,
}

enum Kind {
    Message,
    Event,
}

struct Method {
    item: TraitItemFn,
    kind: Kind,
    pattern: LitStr,
    /// The payload argument, if the method takes one.
    payload: Option<(syn::Ident, Type)>,
    timeout: Option<std::time::Duration>,
    idempotent: bool,
}

pub(crate) fn expand(args: TokenStream, item: ItemTrait) -> TokenStream {
    let cx = Ctxt::default();
    let args = parse_args(args, &cx);
    let methods: Vec<Method> = item
        .items
        .iter()
        .filter_map(|trait_item| match trait_item {
            TraitItem::Fn(f) => method(f, &cx),
            other => {
                cx.error(other, "a #[message_interface] trait can only hold methods");
                None
            }
        })
        .collect();
    if !item.generics.params.is_empty() {
        cx.error(
            &item.generics,
            "#[message_interface] traits cannot be generic",
        );
    }
    let stripped = strip(item.clone());
    match cx.finish() {
        Ok(()) => generate(&args.krate, &stripped, &methods),
        Err(e) => {
            let errors = e.to_compile_error();
            quote! {
                #errors
                #[allow(async_fn_in_trait)]
                #stripped
            }
        }
    }
}

fn parse_args(args: TokenStream, cx: &Ctxt) -> Args {
    let mut krate: syn::Path = syn::parse_quote!(::sdk_messaging);
    let parser = syn::meta::parser(|meta: ParseNestedMeta<'_>| {
        if meta.path.is_ident("crate") {
            let lit: LitStr = meta.value()?.parse()?;
            krate = lit.parse()?;
            Ok(())
        } else {
            Err(meta.error("unknown key; #[message_interface] takes `crate = \"...\"`"))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        cx.syn(e);
    }
    Args { krate }
}

fn method(f: &TraitItemFn, cx: &Ctxt) -> Option<Method> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        cx.error(sig.fn_token, "message methods must be `async fn`");
    }
    if !sig.generics.params.is_empty() {
        cx.error(&sig.generics, "message methods cannot be generic");
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, None)) => {}
        _ => cx.error(sig, "message methods take `&self` first"),
    }
    let mut found = None;
    let (mut timeout, mut idempotent) = (None, false);
    for attr in &f.attrs {
        let kind = if attr.path().is_ident("message_pattern") {
            Some(Kind::Message)
        } else if attr.path().is_ident("event_pattern") {
            Some(Kind::Event)
        } else {
            None
        };
        if let Some(kind) = kind {
            match attr.parse_args::<LitStr>() {
                Ok(pattern) if found.is_some() => {
                    cx.error(&pattern, "a method has one pattern; remove this attribute");
                }
                Ok(pattern) => {
                    check_pattern(&pattern, cx);
                    found = Some((kind, pattern));
                }
                Err(e) => cx.syn(syn::Error::new(
                    e.span(),
                    "write the pattern: #[message_pattern(\"user.create\")]",
                )),
            }
        } else if attr.path().is_ident("timeout") {
            match attr
                .parse_args::<LitStr>()
                .and_then(|l| duration::parse(&l))
            {
                Ok(d) => timeout = Some(d),
                Err(e) => cx.syn(e),
            }
        } else if attr.path().is_ident("idempotent") {
            idempotent = true;
        }
    }
    let Some((kind, pattern)) = found else {
        cx.error(
            sig,
            "every method needs #[message_pattern(\"...\")] (a request) or #[event_pattern(\"...\")] (an event)",
        );
        return None;
    };
    let payload = payload(f, cx);
    check_return(f, &kind, cx);
    if idempotent && matches!(kind, Kind::Event) {
        cx.error(
            sig,
            "events are always safe to repeat; #[idempotent] is for #[message_pattern] methods",
        );
    }
    Some(Method {
        item: f.clone(),
        kind,
        pattern,
        payload,
        timeout,
        idempotent,
    })
}

/// The same rule as the runtime's `Pattern::message`: tokens of letters, digits, `-`, `_`.
fn check_pattern(pattern: &LitStr, cx: &Ctxt) {
    let text = pattern.value();
    let ok = !text.is_empty()
        && text.len() <= 255
        && text.split('.').count() <= 16
        && text.split('.').all(|t| {
            !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        let hint = if text.contains(['*', '#']) {
            "a typed interface's client sends to this pattern, so it cannot hold a wildcard; \
             register a wildcard handler on the server with `event_pattern` instead"
        } else {
            "a pattern is dot-separated tokens of letters, digits, `-` and `_`, e.g. \"user.create\""
        };
        cx.error(pattern, hint);
    }
}

fn payload(f: &TraitItemFn, cx: &Ctxt) -> Option<(syn::Ident, Type)> {
    let mut found = None;
    for input in f.sig.inputs.iter().skip(1) {
        let FnArg::Typed(typed) = input else { continue };
        let Pat::Ident(pat) = &*typed.pat else {
            cx.error(&typed.pat, "use a plain name for the payload argument");
            continue;
        };
        if found.is_some() {
            cx.error(
                typed,
                "a message carries one payload; put these fields in one struct",
            );
            continue;
        }
        if let Type::Reference(reference) = &*typed.ty {
            cx.error(
                reference,
                "take the payload by value: the handler side owns the message it decodes",
            );
        }
        found = Some((pat.ident.clone(), (*typed.ty).clone()));
    }
    found
}

fn check_return(f: &TraitItemFn, kind: &Kind, cx: &Ctxt) {
    let message = match kind {
        Kind::Message => "a #[message_pattern] method returns `ServiceResult<T>` (T: DeserializeOwned, its reply)",
        Kind::Event => "an #[event_pattern] method returns `ServiceResult<()>`: an event has no reply",
    };
    let ReturnType::Type(_, ty) = &f.sig.output else {
        cx.error(&f.sig, message);
        return;
    };
    let inner = match &**ty {
        Type::Path(path) => path.path.segments.last().and_then(|last| {
            if last.ident != "ServiceResult" {
                return None;
            }
            match &last.arguments {
                syn::PathArguments::AngleBracketed(a) if a.args.len() == 1 => match &a.args[0] {
                    syn::GenericArgument::Type(t) => Some(t.clone()),
                    _ => None,
                },
                _ => None,
            }
        }),
        _ => None,
    };
    match (inner, kind) {
        (None, _) => cx.error(ty, message),
        (Some(Type::Tuple(t)), Kind::Event) if t.elems.is_empty() => {}
        (Some(_), Kind::Event) => cx.error(ty, message),
        (Some(_), Kind::Message) => {}
    }
}

/// The trait without our attributes.
fn strip(mut item: ItemTrait) -> ItemTrait {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(f) = trait_item {
            f.attrs
                .retain(|a| !ATTRS.iter().any(|name| a.path().is_ident(name)));
        }
    }
    item
}

fn generate(krate: &syn::Path, item: &ItemTrait, methods: &[Method]) -> TokenStream {
    let private = quote!(#krate::__private);
    let trait_item = crate::expand::send_futures(item.clone());
    let (vis, ident) = (&item.vis, &item.ident);
    let client = format_ident!("{}Client", ident);
    let handlers = format_ident!("{}Handlers", ident);
    let client_methods = methods.iter().map(client_method);
    let registrations = methods.iter().map(|m| registration(m, &private));
    let client_doc = format!(
        "The generated client of [`{ident}`]: each method sends its message over a messaging \
         connection, through the SDK's pipeline."
    );
    let handlers_doc = format!(
        "Registers an implementation of [`{ident}`] as the handlers of its patterns \
         (a method's context is `MessageContext::current()`)."
    );
    quote! {
        #trait_item

        #[doc = #client_doc]
        #[derive(Clone, Debug)]
        #vis struct #client {
            client: #private::MessageClient,
        }

        impl #client {
            /// A client sending over `messaging`. Cheap to clone.
            pub fn new(messaging: &#private::Messaging) -> Self {
                #client { client: messaging.client() }
            }

            /// The ad-hoc client underneath.
            pub fn message_client(&self) -> &#private::MessageClient {
                &self.client
            }
        }

        impl #ident for #client {
            #(#client_methods)*
        }

        #[doc = #handlers_doc]
        #[derive(Clone, Copy, Debug)]
        #vis struct #handlers;

        impl #handlers {
            /// Adds a handler to `server` for each of the trait's patterns, calling
            /// `implementation`'s method.
            pub fn register<T>(
                server: #private::MessageServer,
                implementation: T,
            ) -> #private::MessageServer
            where
                T: #ident + ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                let implementation = ::std::sync::Arc::new(implementation);
                let mut server = server;
                #(#registrations)*
                server
            }
        }
    }
}

fn client_method(method: &Method) -> TokenStream {
    let sig = &method.item.sig;
    let (ident, inputs) = (&sig.ident, &sig.inputs);
    let ReturnType::Type(_, ret) = &sig.output else {
        return TokenStream::new();
    };
    let pattern = &method.pattern;
    let payload = match &method.payload {
        Some((arg, _)) => quote!(&#arg),
        None => quote!(&()),
    };
    let mut options = Vec::new();
    if let Some(timeout) = method.timeout {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        options.push(quote!(.timeout(::core::time::Duration::from_nanos(#nanos))));
    }
    if method.idempotent {
        options.push(quote!(.idempotent(true)));
    }
    let verb = match method.kind {
        Kind::Message => quote!(send()),
        Kind::Event => quote!(emit()),
    };
    quote! {
        fn #ident(#inputs) -> impl ::core::future::Future<Output = #ret> + ::core::marker::Send {
            async move {
                self.client.message(#pattern, #payload) #(#options)* .#verb.await
            }
        }
    }
}

fn registration(method: &Method, private: &TokenStream) -> TokenStream {
    let ident = &method.item.sig.ident;
    let pattern = &method.pattern;
    let register = match method.kind {
        Kind::Message => quote!(message_pattern),
        Kind::Event => quote!(event_pattern),
    };
    let (arg, ty, call) = match &method.payload {
        Some((arg, ty)) => (
            quote!(#arg),
            quote!(#ty),
            quote!(implementation.#ident(#arg)),
        ),
        None => (quote!(_), quote!(()), quote!(implementation.#ident())),
    };
    quote! {
        {
            let implementation = implementation.clone();
            server = server.#register(#pattern, move |#arg: #ty, _context: #private::MessageContext| {
                let implementation = implementation.clone();
                async move { #call.await }
            });
        }
    }
}
