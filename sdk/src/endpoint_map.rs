//! State kept per endpoint (`METHOD path-template`) of one service: its circuit breaker, its
//! metric handles. One bounded, lock-free-to-read map for both.
//!
//! Reads are a lock-free load of an immutable map per method (arc-swap); the first call to
//! an endpoint copies that bounded map once. Past `max` endpoints (ad-hoc calls that format
//! ids into their paths would otherwise grow it without end), endpoints share one overflow
//! entry. Why not `moka` or `dashmap`: the read path here is one atomic load and one hash
//! of a short key, with no eviction, which is all a per-endpoint table needs.

use sdk_base::sync::Unpoisoned as _;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use arc_swap::ArcSwap;
use http::Method;

// foldhash (hashbrown's default): several times cheaper than SipHash on short keys, seeded
// per map; with the map bounded, flooding it cannot cost much.
type Map<T> = HashMap<Box<str>, Arc<T>, foldhash::fast::RandomState>;

const METHODS: [Method; 8] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::TRACE,
];

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| m == method)
        .unwrap_or(METHODS.len())
}

/// How long a `METHOD endpoint` key of a non-standard method may be and still be built
/// on the stack (messaging's `SEND`/`EMIT` calls build one on every call).
const KEY_ON_STACK: usize = 256;

/// Runs `f` with the key of `endpoint` in the map of method slot `index`: the endpoint
/// itself, or for the map non-standard methods share, `METHOD endpoint` (built on the stack
/// when it fits). The buffer is made only for those: zeroing it cost every call ~25
/// instructions per lookup.
fn with_key<R>(index: usize, method: &Method, endpoint: &str, f: impl FnOnce(&str) -> R) -> R {
    if index < METHODS.len() {
        return f(endpoint);
    }
    let (name, path) = (method.as_str().as_bytes(), endpoint.as_bytes());
    let len = name.len() + 1 + path.len();
    if len > KEY_ON_STACK {
        return f(&format!("{method} {endpoint}"));
    }
    let mut buf = [0u8; KEY_ON_STACK];
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()] = b' ';
    buf[name.len() + 1..len].copy_from_slice(path);
    // Two `str`s joined by a space: always UTF-8.
    f(std::str::from_utf8(&buf[..len]).unwrap_or(endpoint))
}

/// A bounded map from endpoint to `Arc<T>`, with one overflow entry past the bound.
#[derive(Debug)]
pub(crate) struct EndpointMap<T> {
    by_method: [ArcSwap<Map<T>>; 9],
    /// Serializes inserts (rare: the first call to each endpoint), never reads.
    insert: Mutex<()>,
    max: usize,
    overflow: Arc<T>,
}

impl<T> EndpointMap<T> {
    /// An empty map holding at most `max` endpoints, then sharing `overflow`.
    pub(crate) fn new(max: usize, overflow: T) -> Self {
        EndpointMap {
            by_method: Default::default(),
            insert: Mutex::new(()),
            max,
            overflow: Arc::new(overflow),
        }
    }

    /// Sets the bound.
    pub(crate) fn with_max(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// The entry of `method endpoint`, made by `make` on first use (or the overflow entry
    /// once the map is full).
    pub(crate) fn get_or_insert_with(
        &self,
        method: &Method,
        endpoint: &str,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let index = method_index(method);
        with_key(index, method, endpoint, |key| {
            self.get_or_insert(index, key, make)
        })
    }

    fn get_or_insert(&self, index: usize, key: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let map = &self.by_method[index];
        if let Some(entry) = map.load().get(key) {
            return entry.clone();
        }
        let _insert = self.insert.locked();
        if let Some(entry) = map.load().get(key) {
            return entry.clone(); // another caller inserted it meanwhile
        }
        if self.len() >= self.max {
            return self.overflow.clone();
        }
        let entry = Arc::new(make());
        let mut next = Map::clone(&map.load());
        next.insert(key.into(), entry.clone());
        map.store(Arc::new(next));
        entry
    }

    /// Runs `f` with the entry of `method endpoint` (made by `make` on first use), without
    /// taking a reference count on it: the per-call path of the metrics.
    pub(crate) fn with<R>(
        &self,
        method: &Method,
        endpoint: &str,
        make: impl FnOnce() -> T,
        f: impl FnOnce(&T) -> R,
    ) -> R {
        let index = method_index(method);
        with_key(index, method, endpoint, |key| {
            if let Some(entry) = self.by_method[index].load().get(key) {
                return f(entry);
            }
            f(&self.get_or_insert(index, key, make))
        })
    }

    fn len(&self) -> usize {
        self.by_method.iter().map(|m| m.load().len()).sum()
    }

    /// Every entry with its `METHOD endpoint` name.
    pub(crate) fn entries(&self) -> Vec<(String, Arc<T>)> {
        let mut out = Vec::new();
        for (index, map) in self.by_method.iter().enumerate() {
            for (endpoint, entry) in map.load().iter() {
                let name = match METHODS.get(index) {
                    Some(method) => format!("{method} {endpoint}"),
                    None => endpoint.to_string(),
                };
                out.push((name, entry.clone()));
            }
        }
        out
    }

    /// The entry shared by endpoints past the bound.
    pub(crate) fn overflow(&self) -> &Arc<T> {
        &self.overflow
    }
}
