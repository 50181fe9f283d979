//! The model of an annotated trait, read from syn's tree. Everything wrong is reported to the
//! `Ctxt` with its span; the model keeps what could be read.

use std::time::Duration;

use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemTrait, LitStr, Pat, PathArguments, ReturnType,
    TraitItem, TraitItemFn, Type,
};

use crate::{
    args::InterfaceArgs,
    attr::{self, Breaker, Cached, Fallback, Retry},
    ctxt::Ctxt,
};

pub(crate) struct Interface {
    pub(crate) item: ItemTrait,
    pub(crate) service: LitStr,
    pub(crate) krate: syn::Path,
    pub(crate) version: Option<LitStr>,
    pub(crate) methods: Vec<Method>,
}

pub(crate) struct Method {
    pub(crate) item: TraitItemFn,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) http: Ident,
    pub(crate) path: LitStr,
    pub(crate) template: Vec<Piece>,
    pub(crate) params: Vec<Param>,
    /// `T` in `ServiceResult<T>`.
    pub(crate) output: Type,
    pub(crate) retry: Option<Retry>,
    pub(crate) breaker: Option<Breaker>,
    pub(crate) cached: Option<Cached>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) idempotent: Option<Attribute>,
    pub(crate) fallback: Option<Fallback>,
    pub(crate) hedge: Option<attr::Hedge>,
}

pub(crate) enum Piece {
    Text(String),
    Param(String),
}

pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) kind: ParamKind,
    /// The attribute that gave the kind, for error spans.
    pub(crate) attr: Option<Attribute>,
}

pub(crate) enum ParamKind {
    /// Named in the path template.
    Path,
    Query(String),
    Body,
    Header(String),
    IdempotencyKey,
    /// Neither in the path nor marked: an error, reported by `valid`.
    Unmarked,
}

impl Interface {
    pub(crate) fn from_syn(args: InterfaceArgs, item: ItemTrait, cx: &Ctxt) -> Interface {
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            cx.error(
                &item.generics,
                "#[service_interface] traits cannot be generic; name concrete types instead",
            );
        }
        let mut methods = Vec::new();
        for trait_item in &item.items {
            match trait_item {
                TraitItem::Fn(f) => {
                    if let Some(method) = Method::from_syn(f, &args.base_path, cx) {
                        methods.push(method);
                    }
                }
                other => cx.error(other, "a #[service_interface] trait can only hold methods"),
            }
        }
        Interface {
            item,
            service: args.name,
            krate: args.krate,
            version: args.version,
            methods,
        }
    }
}

impl Method {
    fn from_syn(f: &TraitItemFn, base_path: &str, cx: &Ctxt) -> Option<Method> {
        let sig = &f.sig;
        check_signature(f, cx);
        let output = service_result_type(&sig.output, cx);
        let attrs = MethodAttrs::collect(&f.attrs, cx);
        let Some(call) = attrs.call else {
            cx.error(sig, "every method needs #[service_call(METHOD, \"/path\")]");
            return None;
        };
        let full_path = LitStr::new(
            &format!("{base_path}{}", call.path.value()),
            call.path.span(),
        );
        let template = parse_template(&full_path, cx);
        let path_params: Vec<&str> = template
            .iter()
            .filter_map(|p| match p {
                Piece::Param(name) => Some(name.as_str()),
                Piece::Text(_) => None,
            })
            .collect();
        let params = (sig.inputs.iter().skip(1))
            .filter_map(|input| Param::from_input(input, &path_params, cx))
            .collect();
        Some(Method {
            item: f.clone(),
            docs: attrs.docs,
            http: call.method,
            path: full_path,
            template,
            params,
            output: output.unwrap_or_else(|| syn::parse_quote!(())),
            retry: attrs.retry,
            breaker: attrs.breaker,
            cached: attrs.cached,
            timeout: attrs.timeout,
            idempotent: attrs.idempotent,
            fallback: attrs.fallback,
            hedge: attrs.hedge,
        })
    }
}

/// What a service method's signature must be: `async fn`, not generic, no body, `&self`
/// first. Each mistake is reported at its span.
fn check_signature(f: &TraitItemFn, cx: &Ctxt) {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        cx.error(
            sig.fn_token,
            "service methods must be `async fn`: write `async fn` here",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error(
            &sig.generics,
            "service methods cannot be generic; use concrete argument and return types",
        );
    }
    if let Some(body) = &f.default {
        cx.error(
            body,
            "service methods have no body: the generated client implements them",
        );
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, None)) => {}
        Some(other) => cx.error(other, "service methods take `&self` first"),
        None => cx.error(sig, "service methods take `&self` first"),
    }
}

/// A method's attributes, each parsed by its own reader in `attr`.
#[derive(Default)]
struct MethodAttrs {
    call: Option<attr::ServiceCall>,
    docs: Vec<Attribute>,
    retry: Option<Retry>,
    breaker: Option<Breaker>,
    cached: Option<Cached>,
    timeout: Option<Duration>,
    idempotent: Option<Attribute>,
    fallback: Option<Fallback>,
    hedge: Option<attr::Hedge>,
}

impl MethodAttrs {
    fn collect(attrs: &[Attribute], cx: &Ctxt) -> MethodAttrs {
        let mut found = MethodAttrs::default();
        for a in attrs {
            let Some(name) = a.path().get_ident().map(ToString::to_string) else {
                continue;
            };
            match name.as_str() {
                "doc" => found.docs.push(a.clone()),
                "service_call" => match attr::service_call(a) {
                    Ok(c) => found.call = Some(c),
                    Err(e) => cx.syn(e),
                },
                "retry" => found.retry = Some(attr::retry(a, cx)),
                "circuit_breaker" => found.breaker = Some(attr::circuit_breaker(a, cx)),
                "cached" => found.cached = Some(attr::cached(a, cx)),
                "timeout" => match attr::timeout(a) {
                    Ok(d) => found.timeout = Some(d),
                    Err(e) => cx.syn(e),
                },
                "idempotent" => found.idempotent = Some(a.clone()),
                "fallback" => found.fallback = attr::fallback(a, cx),
                "hedge" => found.hedge = Some(attr::hedge(a, cx)),
                _ => {}
            }
        }
        found
    }
}

impl Param {
    /// One argument after `&self`: its name, type and where it goes (the path when the
    /// template names it, else what its attribute says).
    fn from_input(input: &FnArg, path_params: &[&str], cx: &Ctxt) -> Option<Param> {
        let FnArg::Typed(typed) = input else {
            return None;
        };
        let Pat::Ident(pat) = &*typed.pat else {
            cx.error(&typed.pat, "use a plain name for each argument");
            return None;
        };
        let ident = pat.ident.clone();
        let (kind, kind_attr) = marked_kind(&typed.attrs, &ident, cx);
        let in_path = path_params.contains(&ident.to_string().as_str());
        let kind = match (kind, in_path) {
            (Some(_), true) => {
                cx.error(
                    kind_attr
                        .as_ref()
                        .map_or(&ident as &dyn quote::ToTokens, |a| {
                            a as &dyn quote::ToTokens
                        }),
                    format!("`{ident}` is a path parameter (`<{ident}>`); remove this attribute"),
                );
                ParamKind::Path
            }
            (Some(k), false) => k,
            (None, true) => ParamKind::Path,
            (None, false) => ParamKind::Unmarked,
        };
        Some(Param {
            ident,
            ty: (*typed.ty).clone(),
            kind,
            attr: kind_attr,
        })
    }
}

/// The kind an argument's attribute gives it (`#[query]`, `#[body]`, `#[header]`,
/// `#[idempotency_key]`) and that attribute; a second one is an error.
fn marked_kind(
    attrs: &[Attribute],
    ident: &Ident,
    cx: &Ctxt,
) -> (Option<ParamKind>, Option<Attribute>) {
    let (mut kind, mut kind_attr) = (None, None);
    for a in attrs {
        let parsed = if a.path().is_ident("query") {
            attr::query_name(a).map(|name| {
                Some(ParamKind::Query(
                    name.map_or_else(|| ident.to_string(), |n| n.value()),
                ))
            })
        } else if a.path().is_ident("body") {
            Ok(Some(ParamKind::Body))
        } else if a.path().is_ident("header") {
            attr::header_name(a).map(|name| Some(ParamKind::Header(name.value())))
        } else if a.path().is_ident("idempotency_key") {
            Ok(Some(ParamKind::IdempotencyKey))
        } else {
            Ok(None)
        };
        match parsed {
            Ok(Some(_)) if kind.is_some() => cx.error(
                a,
                "an argument can have only one of #[query], #[body], #[header], #[idempotency_key]",
            ),
            Ok(Some(k)) => {
                kind = Some(k);
                kind_attr = Some(a.clone());
            }
            Ok(None) => {}
            Err(e) => cx.syn(e),
        }
    }
    (kind, kind_attr)
}

/// `T` from `ServiceResult<T>` (also `sdk::ServiceResult<T>`).
fn service_result_type(output: &ReturnType, cx: &Ctxt) -> Option<Type> {
    let message = "service methods return `ServiceResult<T>` (T: DeserializeOwned, or `()` for an empty body)";
    let ReturnType::Type(_, ty) = output else {
        cx.error(output, message);
        return None;
    };
    let Type::Path(path) = &**ty else {
        cx.error(ty, message);
        return None;
    };
    let Some(last) = path
        .path
        .segments
        .last()
        .filter(|s| s.ident == "ServiceResult")
    else {
        cx.error(ty, message);
        return None;
    };
    match &last.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            GenericArgument::Type(t) => Some(t.clone()),
            other => {
                cx.error(other, message);
                None
            }
        },
        _ => {
            cx.error(ty, message);
            None
        }
    }
}

/// Splits `/users/<id>/orders` into text and parameters; reports malformed templates.
fn parse_template(path: &LitStr, cx: &Ctxt) -> Vec<Piece> {
    let text = path.value();
    if !text.starts_with('/') {
        cx.error(path, "the path must start with `/`");
    }
    if text.contains(['?', '#']) {
        cx.error(
            path,
            "put query parameters in #[query] arguments, not in the path",
        );
    }
    let mut text = text;
    if let (Some(open), Some(close)) = (text.find('{'), text.find('}')) {
        if open < close {
            let name = &text[open + 1..close];
            cx.error(
                path,
                format!("path parameters are written `<{name}>` here, not `{{{name}}}`"),
            );
            // Read on as meant, so the argument is not reported as unmarked too.
            text = text.replace('{', "<").replace('}', ">");
        }
    }
    let mut pieces = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('<') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let Some(close) = rest[open..].find('>') else {
            cx.error(
                path,
                "unclosed `<` in the path; write parameters as `<name>`",
            );
            return pieces;
        };
        let name = &rest[open + 1..open + close];
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            cx.error(
                path,
                format!(
                    "`<{name}>` is not a parameter name; write `<name>` with a Rust identifier"
                ),
            );
        }
        pieces.push(Piece::Param(name.to_owned()));
        rest = &rest[open + close + 1..];
    }
    if rest.contains('>') {
        cx.error(path, "`>` without `<` in the path");
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    pieces
}
