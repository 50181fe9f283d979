//! The response cache's settings: [`CacheConfig`].

use std::time::Duration;

use http::{HeaderName, StatusCode};

use super::de;
use crate::outcome::StatusClass;

/// Cache settings of one service.
///
/// In a config file: `[services.NAME.cache]` (or `[defaults.cache]`).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Cache GETs by default (default false; a request can opt in with its own TTL).
    #[serde(deserialize_with = "de::lenient")]
    pub enabled: bool,
    /// How long an answer stays fresh (default 60 s).
    #[serde(deserialize_with = "de::duration")]
    pub ttl: Duration,
    /// Memory bound in bytes of keys and bodies (default 64 MiB).
    #[serde(deserialize_with = "de::size")]
    pub max_bytes: u64,
    /// Serve an expired answer for this long when the service fails (default: off; `"0s"`
    /// in a file turns it off).
    #[serde(deserialize_with = "de::duration_or_off")]
    pub stale_if_error: Option<Duration>,
    /// Request headers that are part of the key (e.g. `accept-language`).
    #[serde(deserialize_with = "de::header_names")]
    pub vary_headers: Vec<HeaderName>,
    /// Cache error answers with one of `error_statuses` too, for this long (default: off;
    /// `"0s"` in a file turns it off). A request or method can set its own.
    #[serde(deserialize_with = "de::duration_or_off")]
    pub cache_on_error: Option<Duration>,
    /// The error answers `cache_on_error` stores (default 404 and 410): 4xx only, and not
    /// 408 or 429, which say "later", not "no".
    #[serde(deserialize_with = "de::statuses")]
    pub error_statuses: Vec<StatusCode>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            ttl: Duration::from_secs(60),
            max_bytes: 64 * 1024 * 1024,
            stale_if_error: None,
            vary_headers: Vec::new(),
            cache_on_error: None,
            error_statuses: vec![StatusCode::NOT_FOUND, StatusCode::GONE],
        }
    }
}

impl CacheConfig {
    /// The defaults: off, 60 s TTL when on, 64 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Caching on, answers fresh for `ttl`.
    pub fn enabled_for(ttl: Duration) -> Self {
        Self::default().enabled(true).ttl(ttl)
    }

    /// Serves an expired answer for `window` when the service fails (default: off).
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    /// Request headers that are part of the key (e.g. `accept-language`).
    #[must_use]
    pub fn vary_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.vary_headers = names.into_iter().collect();
        self
    }

    /// Caches error answers with one of [`error_statuses`](Self::error_statuses) for
    /// `ttl` too (default: off).
    #[must_use]
    pub fn cache_on_error(mut self, ttl: Duration) -> Self {
        self.cache_on_error = Some(ttl);
        self
    }

    /// The error answers `cache_on_error` stores (default 404 and 410).
    #[must_use]
    pub fn error_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.error_statuses = statuses.into_iter().collect();
        self
    }

    /// Checks the settings (see [`Check`](crate::config)).
    pub(crate) fn check(&self) -> super::Check {
        if self.ttl.is_zero() {
            return Err((
                "ttl",
                "must be greater than zero (turn the cache off with `enabled = false`)".into(),
            ));
        }
        if let Some(status) = self
            .error_statuses
            .iter()
            .find(|s| !is_cacheable_error(**s))
        {
            return Err((
                "error_statuses",
                format!(
                    "{status} cannot be cached: only 4xx answers other than 408 and 429 (a 5xx \
                     or a \"try later\" says nothing lasting; see `stale_if_error`)"
                ),
            ));
        }
        Ok(())
    }
}

setters!(CacheConfig {
    /// Cache GETs by default (default false).
    enabled: bool,
    /// How long an answer stays fresh (default 60 s).
    ttl: Duration,
    /// Memory bound in bytes of keys and bodies (default 64 MiB).
    max_bytes: u64,
});

/// Whether an error answer with `status` may be cached: a 4xx that says "no", not "later".
fn is_cacheable_error(status: StatusCode) -> bool {
    StatusClass::of(status) == StatusClass::Refused
}
