use tower::Layer;

use super::{Cache, ResponseCache};

/// Applies [`Cache`] with a shared [`ResponseCache`].
#[derive(Clone, Debug)]
pub struct CacheLayer {
    cache: ResponseCache,
}

impl CacheLayer {
    /// A layer serving from `cache`.
    pub fn new(cache: ResponseCache) -> Self {
        CacheLayer { cache }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache::new(inner, self.cache.clone())
    }
}
