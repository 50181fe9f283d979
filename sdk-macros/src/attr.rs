//! The method and parameter attributes, each parsed with the span of the token at fault.

use std::time::Duration;

use syn::{
    bracketed, parse::ParseStream, punctuated::Punctuated, Attribute, Ident, LitFloat, LitInt,
    LitStr, Token,
};

use crate::{ctxt::Ctxt, duration};

/// Attribute names this macro owns (stripped from the trait it emits).
pub(crate) const METHOD_ATTRS: &[&str] = &[
    "service_call",
    "retry",
    "circuit_breaker",
    "cached",
    "timeout",
    "idempotent",
    "fallback",
    "hedge",
];
pub(crate) const PARAM_ATTRS: &[&str] = &["query", "body", "header", "idempotency_key"];

pub(crate) fn is_ours(attr: &Attribute, names: &[&str]) -> bool {
    names.iter().any(|n| attr.path().is_ident(n))
}

/// `#[service_call(GET, "/users/<id>")]`.
pub(crate) struct ServiceCall {
    pub(crate) method: Ident,
    pub(crate) path: LitStr,
}

pub(crate) fn service_call(attr: &Attribute) -> syn::Result<ServiceCall> {
    attr.parse_args_with(|input: ParseStream<'_>| {
        let method: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected an HTTP method: #[service_call(GET, \"/path\")]",
            )
        })?;
        input.parse::<Token![,]>()?;
        let path: LitStr = input.parse()?;
        let _ = input.parse::<Option<Token![,]>>()?;
        Ok(ServiceCall { method, path })
    })
}

/// `#[retry(max_attempts = 3, delay = "100ms", backoff = 2.0)]`.
pub(crate) struct Retry {
    pub(crate) attr: Attribute,
    pub(crate) max_attempts: u32,
    pub(crate) delay: Duration,
    pub(crate) backoff: f64,
}

pub(crate) fn retry(attr: &Attribute, cx: &Ctxt) -> Retry {
    let mut retry = Retry {
        attr: attr.clone(),
        max_attempts: 3,
        delay: Duration::from_millis(100),
        backoff: 2.0,
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return retry;
    }
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("max_attempts") {
            let lit: LitInt = meta.value()?.parse()?;
            let n: u32 = lit.base10_parse()?;
            if n == 0 {
                cx.error(&lit, "max_attempts must be at least 1");
            }
            retry.max_attempts = n;
        } else if meta.path.is_ident("delay") {
            match duration::parse(&meta.value()?.parse()?) {
                Ok(d) => retry.delay = d,
                Err(e) => cx.syn(e),
            }
        } else if meta.path.is_ident("backoff") {
            let value = meta.value()?;
            let backoff = if value.peek(LitFloat) {
                value.parse::<LitFloat>()?.base10_parse::<f64>()?
            } else {
                f64::from(value.parse::<LitInt>()?.base10_parse::<u32>()?)
            };
            if !(1.0..=100.0).contains(&backoff) {
                return Err(meta.error("backoff is the growth factor per retry; use 1.0 to 100.0"));
            }
            retry.backoff = backoff;
        } else {
            return Err(meta.error("unknown retry key; use `max_attempts`, `delay` or `backoff`"));
        }
        Ok(())
    });
    if let Err(e) = result {
        cx.syn(e);
    }
    retry
}

/// `#[hedge(after = "p95", max = 1, min_samples = 20)]`.
pub(crate) struct Hedge {
    pub(crate) attr: Attribute,
    /// A percentile, or else a fixed delay.
    pub(crate) percentile: Option<f64>,
    pub(crate) delay: Option<Duration>,
    pub(crate) max: u32,
    pub(crate) min_samples: u32,
}

pub(crate) fn hedge(attr: &Attribute, cx: &Ctxt) -> Hedge {
    let mut hedge = Hedge {
        attr: attr.clone(),
        percentile: Some(95.0),
        delay: None,
        max: 1,
        min_samples: 20,
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return hedge;
    }
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("after") {
            let lit: LitStr = meta.value()?.parse()?;
            let text = lit.value();
            if let Some(p) = text.strip_prefix('p') {
                match p.parse::<f64>() {
                    Ok(p) if p > 0.0 && p < 100.0 => {
                        (hedge.percentile, hedge.delay) = (Some(p), None)
                    }
                    _ => cx.error(&lit, "a percentile is p1 to p99.9, such as \"p95\""),
                }
            } else {
                match duration::parse(&lit) {
                    Ok(d) => (hedge.percentile, hedge.delay) = (None, Some(d)),
                    Err(e) => cx.syn(e),
                }
            }
        } else if meta.path.is_ident("max") {
            let lit: LitInt = meta.value()?.parse()?;
            let n: u32 = lit.base10_parse()?;
            if !(1..=3).contains(&n) {
                cx.error(&lit, "max is the number of hedges per call: 1 to 3");
            }
            hedge.max = n;
        } else if meta.path.is_ident("min_samples") {
            let lit: LitInt = meta.value()?.parse()?;
            hedge.min_samples = lit.base10_parse()?;
        } else {
            return Err(meta.error("unknown hedge key; use `after`, `max` or `min_samples`"));
        }
        Ok(())
    });
    if let Err(e) = result {
        cx.syn(e);
    }
    hedge
}

/// `#[circuit_breaker(failure_threshold = 3, success_threshold = 2, recovery_timeout = "30s")]`.
#[derive(Default)]
pub(crate) struct Breaker {
    pub(crate) failure_threshold: Option<u32>,
    pub(crate) success_threshold: Option<u32>,
    pub(crate) recovery_timeout: Option<Duration>,
}

pub(crate) fn circuit_breaker(attr: &Attribute, cx: &Ctxt) -> Breaker {
    let mut breaker = Breaker::default();
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return breaker;
    }
    let result = attr.parse_nested_meta(|meta| {
        let threshold = |meta: &syn::meta::ParseNestedMeta<'_>| -> syn::Result<u32> {
            let lit: LitInt = meta.value()?.parse()?;
            let n: u32 = lit.base10_parse()?;
            if n == 0 {
                return Err(syn::Error::new_spanned(&lit, "a threshold must be at least 1"));
            }
            Ok(n)
        };
        if meta.path.is_ident("failure_threshold") {
            breaker.failure_threshold = Some(threshold(&meta)?);
        } else if meta.path.is_ident("success_threshold") {
            breaker.success_threshold = Some(threshold(&meta)?);
        } else if meta.path.is_ident("recovery_timeout") {
            match duration::parse(&meta.value()?.parse()?) {
                Ok(d) => breaker.recovery_timeout = Some(d),
                Err(e) => cx.syn(e),
            }
        } else {
            return Err(meta.error(
                "unknown circuit_breaker key; use `failure_threshold`, `success_threshold` or `recovery_timeout`",
            ));
        }
        Ok(())
    });
    if let Err(e) = result {
        cx.syn(e);
    }
    breaker
}

/// `#[cached(ttl = "5m", vary_on = ["accept-language"], key = product_key, cache_on_error = "30s")]`.
pub(crate) struct Cached {
    pub(crate) attr: Attribute,
    pub(crate) ttl: Duration,
    pub(crate) vary_on: Vec<String>,
    /// A function of the method's arguments (by reference) returning the cache key.
    pub(crate) key: Option<syn::Path>,
    /// How long error answers (the service's `error_statuses`) are cached.
    pub(crate) cache_on_error: Option<Duration>,
}

pub(crate) fn cached(attr: &Attribute, cx: &Ctxt) -> Cached {
    let mut cached = Cached {
        attr: attr.clone(),
        ttl: Duration::from_secs(60),
        vary_on: Vec::new(),
        key: None,
        cache_on_error: None,
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return cached;
    }
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("ttl") {
            match duration::parse(&meta.value()?.parse()?) {
                Ok(d) => cached.ttl = d,
                Err(e) => cx.syn(e),
            }
        } else if meta.path.is_ident("vary_on") {
            let value = meta.value()?;
            let content;
            bracketed!(content in value);
            for name in Punctuated::<LitStr, Token![,]>::parse_terminated(&content)? {
                let header = name.value().to_ascii_lowercase();
                if header.is_empty()
                    || !header
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    cx.error(&name, "not a header name");
                }
                cached.vary_on.push(header);
            }
        } else if meta.path.is_ident("key") {
            cached.key = Some(meta.value()?.parse().map_err(|e: syn::Error| {
                syn::Error::new(
                    e.span(),
                    "`key` names a function of the method's arguments: `key = product_key`",
                )
            })?);
        } else if meta.path.is_ident("cache_on_error") {
            match duration::parse(&meta.value()?.parse()?) {
                Ok(d) => cached.cache_on_error = Some(d),
                Err(e) => cx.syn(e),
            }
        } else {
            return Err(
                meta.error("unknown cached key; use `ttl`, `vary_on`, `key` or `cache_on_error`")
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        cx.syn(e);
    }
    cached
}

/// `#[fallback(path::to::function)]` or `#[fallback(function, on = [timeout, circuit_open])]`.
pub(crate) struct Fallback {
    /// Called with the method's arguments and the error.
    pub(crate) function: syn::Path,
    /// The failures it takes over (`circuit_open`, `timeout`, `server_error`,
    /// `unavailable`); empty: the SDK's default set.
    pub(crate) on: Vec<Ident>,
}

/// The names `on = [...]` takes (the SDK's `FallbackOn::from_name`).
pub(crate) const FALLBACK_CAUSES: &[&str] =
    &["circuit_open", "timeout", "server_error", "unavailable"];

pub(crate) fn fallback(attr: &Attribute, cx: &Ctxt) -> Option<Fallback> {
    let parsed = attr.parse_args_with(|input: ParseStream<'_>| {
        let function: syn::Path = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "name the fallback function: #[fallback(path::to::function)]",
            )
        })?;
        let mut on = Vec::new();
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let key: Ident = input.parse()?;
            if key != "on" {
                return Err(syn::Error::new_spanned(
                    key,
                    "unknown fallback key; write #[fallback(function, on = [timeout, circuit_open])]",
                ));
            }
            input.parse::<Token![=]>()?;
            let content;
            bracketed!(content in input);
            for cause in Punctuated::<Ident, Token![,]>::parse_terminated(&content)? {
                if !FALLBACK_CAUSES.iter().any(|c| cause == c) {
                    cx.error(
                        &cause,
                        format!(
                            "unknown failure `{cause}`; a fallback takes over {}",
                            FALLBACK_CAUSES.join(", ")
                        ),
                    );
                }
                on.push(cause);
            }
            if on.is_empty() {
                cx.error(attr, "`on = []` would never fall back; name at least one failure");
            }
            let _ = input.parse::<Option<Token![,]>>()?;
        }
        Ok(Fallback { function, on })
    });
    match parsed {
        Ok(fallback) => Some(fallback),
        Err(e) => {
            cx.syn(e);
            None
        }
    }
}

/// `#[timeout("2s")]`.
pub(crate) fn timeout(attr: &Attribute) -> syn::Result<Duration> {
    duration::parse(&attr.parse_args::<LitStr>()?)
}

/// `#[query]`, `#[query("name")]` or `#[query(name = "name")]`: the wire name, if renamed.
pub(crate) fn query_name(attr: &Attribute) -> syn::Result<Option<LitStr>> {
    match &attr.meta {
        syn::Meta::Path(_) => Ok(None),
        _ => attr.parse_args_with(|input: ParseStream<'_>| {
            if input.peek(LitStr) {
                return Ok(Some(input.parse()?));
            }
            let key: Ident = input.parse()?;
            if key != "name" {
                return Err(syn::Error::new_spanned(
                    key,
                    "write #[query], #[query(\"name\")] or #[query(name = \"name\")]",
                ));
            }
            input.parse::<Token![=]>()?;
            Ok(Some(input.parse()?))
        }),
    }
}

/// `#[header("X-Name")]`.
pub(crate) fn header_name(attr: &Attribute) -> syn::Result<LitStr> {
    let lit: LitStr = attr.parse_args().map_err(|e| {
        syn::Error::new(
            e.span(),
            "write the header name: #[header(\"X-Request-Id\")]",
        )
    })?;
    let name = lit.value();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(syn::Error::new_spanned(&lit, "not a valid header name"));
    }
    Ok(lit)
}
