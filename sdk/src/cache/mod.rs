//! A TTL cache for GET responses, in front of everything else.
//!
//! - Keyed on method, path, query and the configured `vary_headers` ([`CacheKey`]), or on a
//!   key the caller names (`cache_key`, a generated method's `#[cached(key = function)]`).
//! - 2xx answers are stored; each entry keeps its own TTL (per request or per service).
//! - With `cache_on_error`, error answers with one of the `error_statuses` (404 and 410 by
//!   default) are stored too, for that TTL of their own, so a missing resource does not cost
//!   an upstream call every time. 5xx answers never are (see `stale_if_error`).
//! - Concurrent misses for one key make one upstream request: moka's
//!   `entry().or_insert_with_if` runs one initializer per key and hands its value to every
//!   waiter, failures included, except the filling caller's own deadline: each waiter waits
//!   no longer than its own deadline (stamped by [`deadline`](crate::deadline), which runs
//!   outside this layer), and a fill whose caller ran out of time is handed to the next
//!   waiter.
//! - Bounded by bytes (key plus body), evicted by moka's TinyLFU.
//! - `stale_if_error`: an expired entry is kept that much longer, and served (marked
//!   [`CacheStatus::Stale`]) when the refresh fails or the breaker is open.
//! - [`CacheMode::Refresh`] skips the lookup and stores the fresh answer; `Bypass` skips the
//!   cache entirely.
//!
//! Freshness is judged on tokio's clock (so tests can pause time); moka's own expiry only
//! reclaims memory after the stale window.

mod entry;
mod key;
mod layer;

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::Method;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use self::entry::{Entry, EntryExpiry};
pub use self::{key::CacheKey, layer::CacheLayer};
pub use crate::settings::CacheConfig;
use crate::{
    box_error::BoxError,
    error::DeadlineExceeded,
    outcome::ErrorClass,
    request::{CacheMode, ServiceRequest},
    response::{CacheStatus, ServiceResponse},
};

/// The cached responses of one service. Cheap to clone: one `Arc` (moka's cache handle is
/// several, and the pipeline is cloned per call).
#[derive(Clone, Debug)]
pub struct ResponseCache {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: moka::future::Cache<CacheKey, Arc<Entry>>,
    config: CacheConfig,
}

impl ResponseCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        let builder = moka::future::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &CacheKey, entry: &Arc<Entry>| entry.weight(key))
            .expire_after(EntryExpiry);
        // Keys may carry header variants (service `vary_headers`, a method's `vary_on`);
        // `clear_key` drops them all with an invalidation closure.
        let builder = builder.support_invalidation_closures();
        ResponseCache {
            shared: Arc::new(Shared {
                store: builder.build(),
                config,
            }),
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.shared.store.invalidate_all();
    }

    /// Drops the entries cached under `key`, whatever their vary headers: a key a request
    /// named (`cache_key`, `#[cached(key = ...)]`) or a GET path with its query. A lookup
    /// never returns them after this returns (moka applies the predicate on reads, and
    /// removes the entries in the background).
    pub fn clear_key(&self, key: &str) {
        let (path, named) = (CacheKey::base(&Method::GET, key), CacheKey::named(key));
        // Invalidation closures are enabled when the cache is built, so this cannot fail.
        let _ = self
            .shared
            .store
            .invalidate_entries_if(move |k, _| k.has_base(&path) || k.has_base(&named));
    }

    /// Entries currently held (approximate; moka applies writes in batches).
    pub fn entry_count(&self) -> u64 {
        self.shared.store.entry_count()
    }

    /// How long `request`'s answers are kept, if they are cached at all.
    fn ttl_for(&self, request: &ServiceRequest) -> Option<Ttl> {
        let options = request.options();
        if request.method() != Method::GET || options.cache_mode == CacheMode::Bypass {
            return None;
        }
        let config = &self.shared.config;
        let ok = options.cache_ttl.or(config.enabled.then_some(config.ttl))?;
        let error = options
            .cache_on_error
            .or(config.cache_on_error)
            .filter(|ttl| !ttl.is_zero() && !config.error_statuses.is_empty());
        Some(Ttl { ok, error })
    }
}

/// How long one request's answers stay fresh: a 2xx for `ok`, an error answer with one of
/// the service's `error_statuses` for `error` (not at all when `None`).
#[derive(Clone, Copy, Debug)]
struct Ttl {
    ok: Duration,
    error: Option<Duration>,
}

/// Serves GETs from the cache; see the module docs.
#[derive(Clone, Debug)]
pub struct Cache<S> {
    inner: S,
    cache: ResponseCache,
}

impl<S> Cache<S> {
    /// Wraps `inner` with `cache`.
    pub fn new(inner: S, cache: ResponseCache) -> Self {
        Cache { inner, cache }
    }
}

type BoxFuture = crate::box_error::BoxFuture<ServiceResponse>;

impl<S> Service<ServiceRequest> for Cache<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = ServiceResponse;
    type Error = BoxError;
    type Future = futures_util::future::Either<
        futures_util::future::MapErr<S::Future, fn(S::Error) -> BoxError>,
        BoxFuture,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ServiceRequest) -> Self::Future {
        use futures_util::TryFutureExt;
        let into: fn(S::Error) -> BoxError = Into::into;
        let Some(ttl) = self.cache.ttl_for(&request) else {
            return futures_util::future::Either::Left(self.inner.call(request).map_err(into));
        };
        let inner = self.inner.clone();
        let fetch = move |request| inner.oneshot(request).map_err(into);
        let lookup = lookup(self.cache.clone(), fetch, request, ttl);
        futures_util::future::Either::Right(Box::pin(lookup))
    }
}

impl ResponseCache {
    /// Serves `request` from the cache when it is cacheable ([`CacheConfig`], the request's
    /// own options), filling it with `fetch`; otherwise sends it straight to `fetch`, with
    /// no lookup and nothing boxed. The one place the cache decides, for the client's
    /// pipeline and the [`Cache`] layer alike.
    pub(crate) fn through<F, Fut>(
        &self,
        request: ServiceRequest,
        fetch: F,
    ) -> futures_util::future::Either<Fut, BoxFuture>
    where
        F: FnOnce(ServiceRequest) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<ServiceResponse, BoxError>> + Send + 'static,
    {
        match self.ttl_for(&request) {
            None => futures_util::future::Either::Left(fetch(request)),
            // Boxed: the lookup's future (moka's) is large, and only cached calls need it.
            Some(ttl) => {
                let lookup = lookup(self.clone(), fetch, request, ttl);
                futures_util::future::Either::Right(Box::pin(lookup))
            }
        }
    }
}

async fn lookup<F, Fut>(
    cache: ResponseCache,
    fetch: F,
    request: ServiceRequest,
    ttl: Ttl,
) -> Result<ServiceResponse, BoxError>
where
    F: FnOnce(ServiceRequest) -> Fut,
    Fut: std::future::Future<Output = Result<ServiceResponse, BoxError>>,
{
    let config = &cache.shared.config;
    let key = CacheKey::for_request(&request, &config.vary_headers);
    let policy = entry::Keep {
        ttl: ttl.ok,
        stale_window: config.stale_if_error,
        errors: ttl
            .error
            .map(|ttl| (ttl, config.error_statuses.clone().into())),
    };
    let deadline = request.deadline_and_limit();
    if request.options().cache_mode == CacheMode::Refresh {
        let outcome = fetch(request).await;
        let entry = Entry::from_outcome(outcome, &policy, None);
        if entry.is_fresh(Instant::now()) {
            cache.shared.store.insert(key, entry.clone()).await;
        }
        return entry.outcome(CacheStatus::Miss);
    }

    let previous = match cache.shared.store.get(&key).await {
        Some(entry) if entry.is_fresh(Instant::now()) => return entry.outcome(CacheStatus::Hit),
        other => other,
    };
    let bounded = deadline.is_some();
    let fetched = async move {
        let outcome = fetch(request).await;
        if let Err(e) = &outcome {
            if bounded && ErrorClass::of(e.as_ref()) == ErrorClass::Deadline {
                // The filling caller ran out of its own time: that says nothing of the
                // answer, so no waiter gets it. This caller's own bound below fires now,
                // dropping this fill, and moka hands the fill to a waiter with time left.
                std::future::pending::<()>().await;
            }
        }
        Entry::from_outcome(outcome, &policy, previous)
    };
    let fill = cache
        .shared
        .store
        .entry(key)
        .or_insert_with_if(fetched, |entry| !entry.is_fresh(Instant::now()));
    // A caller that joined another's fill waits no longer than its own deadline; if it was
    // the one filling, a waiter with time left takes the fill over (moka runs the next
    // waiter's initializer when one is dropped).
    let entry = match deadline {
        Some((at, limit)) => match tokio::time::timeout_at(at, fill).await {
            Ok(entry) => entry,
            Err(_) => return Err(DeadlineExceeded { limit }.into()),
        },
        None => fill.await,
    };
    entry.into_value().outcome(CacheStatus::Miss)
}
