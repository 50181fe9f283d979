use std::fmt;

use http::{HeaderName, Method};

use crate::request::ServiceRequest;

/// A cache key: `METHOD path?query` (or `=key` for a key the request names), then
/// `\nname:value` for each vary header.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Box<str>);

impl CacheKey {
    /// The key a request named (`cache_key`): `=` cannot start a method, so it never meets a
    /// path key.
    pub(crate) fn named(key: &str) -> Self {
        let mut named = String::with_capacity(1 + key.len());
        named.push('=');
        named.push_str(key);
        CacheKey(named.into())
    }

    pub(crate) fn base(method: &Method, path_and_query: &str) -> Self {
        let mut key = String::with_capacity(method.as_str().len() + 1 + path_and_query.len());
        key.push_str(method.as_str());
        key.push(' ');
        key.push_str(path_and_query);
        CacheKey(key.into())
    }

    pub(crate) fn for_request(request: &ServiceRequest, vary: &[HeaderName]) -> Self {
        let base = match &request.options().cache_key {
            Some(key) => Self::named(key),
            None => Self::base(request.method(), request.path_and_query()),
        };
        let per_request = &request.options().vary_on;
        if vary.is_empty() && per_request.is_empty() {
            return base;
        }
        let mut key = String::from(base.0);
        let names = vary
            .iter()
            .map(HeaderName::as_str)
            .chain(per_request.iter());
        for name in names {
            key.push('\n');
            key.push_str(name);
            key.push(':');
            for value in request.headers().get_all(name) {
                key.push_str(&String::from_utf8_lossy(value.as_bytes()));
                key.push(',');
            }
        }
        CacheKey(key.into())
    }

    pub(crate) fn has_base(&self, base: &CacheKey) -> bool {
        self.0
            .strip_prefix(&*base.0)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('\n'))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Vary values may be credentials; print the method and path (or named key) only.
        let base = self.0.split('\n').next().unwrap_or_default();
        f.debug_tuple("CacheKey").field(&base).finish()
    }
}
