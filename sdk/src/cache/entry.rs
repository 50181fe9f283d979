use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::clock::instant_after;

use super::CacheKey;
use crate::{
    box_error::BoxError,
    response::{CacheStatus, ServiceResponse},
};

/// One cached outcome. Failures are stored too, for an instant, so that every caller
/// waiting on the same fetch gets the same answer (error answers `cache_on_error` keeps,
/// for their own TTL).
#[derive(Debug)]
pub(super) struct Entry {
    outcome: Result<ServiceResponse, SharedError>,
    fresh_until: Instant,
    stale_until: Instant,
    /// How long moka keeps the entry (memory only; freshness is judged on `fresh_until`).
    retain: Duration,
}

/// How long one fetch's outcome is kept: a 2xx for `ttl` (plus `stale_window` to serve when
/// a refresh fails), an error answer with one of `errors`' statuses for its own TTL.
#[derive(Debug)]
pub(super) struct Keep {
    pub(super) ttl: Duration,
    pub(super) stale_window: Option<Duration>,
    pub(super) errors: Option<(Duration, Arc<[http::StatusCode]>)>,
}

impl Keep {
    /// The TTL of an error answer with `status`, when such answers are cached.
    fn error_ttl(&self, status: http::StatusCode) -> Option<Duration> {
        self.errors
            .as_ref()
            .filter(|(_, statuses)| statuses.contains(&status))
            .map(|(ttl, _)| *ttl)
    }
}

impl Entry {
    pub(super) fn from_outcome(
        outcome: Result<ServiceResponse, BoxError>,
        keep: &Keep,
        previous: Option<Arc<Entry>>,
    ) -> Arc<Entry> {
        let now = Instant::now();
        match outcome {
            Ok(response) if response.status().is_success() => {
                let retain = keep
                    .ttl
                    .saturating_add(keep.stale_window.unwrap_or_default());
                Arc::new(Entry {
                    outcome: Ok(response),
                    fresh_until: instant_after(now, keep.ttl),
                    stale_until: instant_after(now, retain),
                    retain,
                })
            }
            Ok(response) if keep.error_ttl(response.status()).is_some() => {
                // A "no" that lasts (404, 410): kept for its own TTL, never served stale.
                let ttl = keep.error_ttl(response.status()).unwrap_or_default();
                Arc::new(Entry {
                    outcome: Ok(response),
                    fresh_until: instant_after(now, ttl),
                    stale_until: now,
                    retain: ttl,
                })
            }
            outcome => {
                let failed = match &outcome {
                    Ok(response) => response.class().fault().counts_against_service(),
                    Err(_) => true,
                };
                if let Some(previous) = previous.filter(|p| failed && p.is_usable_stale(now)) {
                    tracing::debug!("serving a stale cache entry: the refresh failed");
                    return Arc::new(Entry {
                        outcome: previous.outcome.clone().map(|mut r| {
                            r.cache = CacheStatus::Stale;
                            r
                        }),
                        fresh_until: previous.fresh_until,
                        stale_until: previous.stale_until,
                        retain: previous.stale_until.saturating_duration_since(now),
                    });
                }
                Arc::new(Entry {
                    outcome: outcome.map_err(|e| SharedError(Arc::new(e))),
                    fresh_until: now,
                    stale_until: now,
                    retain: Duration::ZERO,
                })
            }
        }
    }

    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    fn is_usable_stale(&self, now: Instant) -> bool {
        self.outcome.is_ok() && now < self.stale_until
    }

    /// The outcome for one caller; a fresh entry read from the cache is a hit.
    pub(super) fn outcome(&self, status: CacheStatus) -> Result<ServiceResponse, BoxError> {
        match &self.outcome {
            Ok(response) => {
                let mut response = response.clone();
                if response.cache != CacheStatus::Stale {
                    response.cache = status;
                }
                Ok(response)
            }
            Err(shared) => Err(Box::new(shared.clone())),
        }
    }

    pub(super) fn weight(&self, key: &CacheKey) -> u32 {
        let body = self.outcome.as_ref().map_or(0, |r| r.bytes().len());
        u32::try_from(key.len() + body + 128).unwrap_or(u32::MAX)
    }
}

/// A failure handed to every caller that waited on the same fetch.
#[derive(Clone, Debug)]
pub(crate) struct SharedError(Arc<BoxError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref().as_ref())
    }
}

/// moka expiry: keep an entry for its TTL plus its stale window.
pub(super) struct EntryExpiry;

impl moka::Expiry<CacheKey, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        entry: &Arc<Entry>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.retain)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        entry: &Arc<Entry>,
        _now: std::time::Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.retain)
    }
}
