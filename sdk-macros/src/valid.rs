//! Checks across a method's parts: path parameters against arguments, bodies against the
//! method, retries against idempotency. Each error points at the token to fix.

use crate::{
    ast::{Interface, Method, ParamKind, Piece},
    ctxt::Ctxt,
};

pub(crate) const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

pub(crate) fn check(interface: &Interface, cx: &Ctxt) {
    for method in &interface.methods {
        check_method(method, cx);
    }
}

fn check_method(method: &Method, cx: &Ctxt) {
    let http = method.http.to_string();
    if !HTTP_METHODS.contains(&http.as_str()) {
        cx.error(
            &method.http,
            format!("unknown HTTP method `{http}`; use one of GET, POST, PUT, PATCH, DELETE, HEAD"),
        );
    }

    check_path_params(method, cx);
    let keys = check_arguments(method, &http, cx);
    check_policies(method, &http, keys, cx);
}

/// Each `<param>` of the path appears once and has an argument.
fn check_path_params(method: &Method, cx: &Ctxt) {
    let mut seen = Vec::new();
    for piece in &method.template {
        let Piece::Param(name) = piece else { continue };
        if seen.contains(name) {
            cx.error(
                &method.path,
                format!("`<{name}>` appears twice in the path"),
            );
        }
        seen.push(name.clone());
        if !method.params.iter().any(|p| p.ident == name) {
            cx.error(
                &method.path,
                format!("`<{name}>` has no matching argument; add `{name}: <type>` to the method's arguments"),
            );
        }
    }
}

/// Every argument has a place, one body at most (none on GET or HEAD), one idempotency key
/// at most; how many idempotency keys there are.
fn check_arguments(method: &Method, http: &str, cx: &Ctxt) -> usize {
    let mut body = None;
    let mut keys = 0;
    for param in &method.params {
        match &param.kind {
            ParamKind::Unmarked => cx.error(
                &param.ident,
                format!(
                    "`{}` is not in the path; mark it #[query], #[body], #[header(\"X-Name\")] or #[idempotency_key]",
                    param.ident
                ),
            ),
            ParamKind::Body => {
                let attr = param.attr.as_ref();
                if body.is_some() {
                    cx.error(attr, "a method can have only one #[body]; combine them into one struct");
                }
                if http == "GET" || http == "HEAD" {
                    cx.error(attr, format!("a {http} request has no body; send this as #[query] arguments"));
                }
                body = Some(());
            }
            ParamKind::IdempotencyKey => {
                keys += 1;
                if keys > 1 {
                    cx.error(param.attr.as_ref(), "a method can have only one #[idempotency_key]");
                }
            }
            _ => {}
        }
    }
    keys
}

/// Retries and hedges only where repeating is safe; caching only on GET.
fn check_policies(method: &Method, http: &str, keys: usize, cx: &Ctxt) {
    let idempotent_by_method = matches!(http, "GET" | "HEAD" | "PUT" | "DELETE");
    if let Some(retry) = &method.retry {
        if !idempotent_by_method && method.idempotent.is_none() && keys == 0 {
            cx.error(
                &retry.attr,
                format!(
                    "{http} is not idempotent, so retrying it can repeat its effect (a retried payment is \
                     money charged twice); add #[idempotent] if the server deduplicates, or take an \
                     #[idempotency_key] argument"
                ),
            );
        }
    }
    if let Some(hedge) = &method.hedge {
        if !idempotent_by_method && method.idempotent.is_none() && keys == 0 {
            cx.error(
                &hedge.attr,
                format!(
                    "{http} is not idempotent, and a hedge sends it twice at once; add #[idempotent] \
                     if the server deduplicates, or take an #[idempotency_key] argument"
                ),
            );
        }
    }
    if let Some(cached) = &method.cached {
        if http != "GET" {
            cx.error(
                &cached.attr,
                format!("#[cached] only applies to GET; {http} answers are never cached"),
            );
        }
    }
}
