//! Limits shared through Redis: one key per route and client, holding the client's
//! theoretical arrival time (GCRA), read and moved by one script on Redis's own clock, so
//! gateways on machines with different clocks agree, and two gateways checking the same
//! client at once cannot both take the last cell.
//!
//! The key expires when the client's allowance is full again, so idle clients cost Redis
//! nothing. Each check is one round trip (`EVALSHA`), bounded by `timeout`; a check that
//! fails or times out returns `None` and the caller counts locally instead.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Script,
};
use sdk::retry::ExponentialBackoff;

use super::ClientKey;
use crate::config::{RateLimit, SharedLimitConfig};

/// KEYS[1] the client's key; ARGV[1] the emission interval and ARGV[2] the burst, in
/// microseconds and cells. Answers 0 when the request may pass, else the microseconds to
/// wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - burst * interval
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return 0
";

/// The connection to the Redis that holds shared limits. Cheap to clone.
#[derive(Clone)]
pub struct SharedLimits {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    timeout: Duration,
    script: Script,
    /// Set once the first connection is made (the manager reconnects by itself after that).
    connection: OnceLock<ConnectionManager>,
    /// Unix seconds of the last warning about counting locally, so an outage logs once a
    /// minute, not once a request.
    last_warning: AtomicU64,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("prefix", &self.inner.prefix)
            .field("connected", &self.inner.connection.get().is_some())
            .finish_non_exhaustive()
    }
}

impl SharedLimits {
    /// Limits shared through the Redis of `config`; connects in the background (until it
    /// has, limits are counted locally). `None` when no Redis is configured.
    pub fn connect(config: &SharedLimitConfig) -> Result<Option<Self>, String> {
        let Some(url) = &config.redis_url else {
            return Ok(None);
        };
        let client = redis::Client::open(url.as_str()).map_err(|e| {
            format!(
                "gateway.rate_limit.redis_url ({}): {e}",
                sdk_base::redact_url(url)
            )
        })?;
        let limits = SharedLimits {
            inner: Arc::new(Inner {
                prefix: config
                    .key_prefix
                    .clone()
                    .unwrap_or_else(|| "sdk-gateway".into()),
                timeout: config.timeout,
                script: Script::new(GCRA),
                connection: OnceLock::new(),
                last_warning: AtomicU64::new(0),
            }),
        };
        let inner = limits.inner.clone();
        tokio::spawn(async move { inner.connect_until_connected(client).await });
        Ok(Some(limits))
    }

    /// Whether the first connection has been made.
    pub fn is_connected(&self) -> bool {
        self.inner.connection.get().is_some()
    }

    /// Takes a cell for `client` on `route`: `Some(Ok)` to pass, `Some(Err(wait))` to refuse,
    /// `None` when Redis could not answer in time.
    pub(super) async fn check(
        &self,
        route: &str,
        client: &ClientKey,
        rate: RateLimit,
    ) -> Option<Result<(), Duration>> {
        let inner = &self.inner;
        let Some(connection) = inner.connection.get() else {
            inner.warn("not connected yet");
            return None;
        };
        let interval_us = u64::try_from(rate.interval().as_micros()).unwrap_or(u64::MAX);
        let key = format!("{}:{route}:{client}", inner.prefix);
        let mut connection = connection.clone();
        let mut invocation = inner.script.key(key);
        invocation.arg(interval_us.max(1)).arg(rate.burst());
        let call = invocation.invoke_async::<u64>(&mut connection);
        match tokio::time::timeout(inner.timeout, call).await {
            Ok(Ok(0)) => Some(Ok(())),
            Ok(Ok(wait_us)) => Some(Err(Duration::from_micros(wait_us))),
            Ok(Err(e)) => {
                inner.warn(&e.to_string());
                None
            }
            Err(_) => {
                inner.warn("no answer in time");
                None
            }
        }
    }
}

impl Inner {
    async fn connect_until_connected(&self, client: redis::Client) {
        let reconnect = ExponentialBackoff::reconnect();
        let config = ConnectionManagerConfig::new()
            .set_min_delay(reconnect.step(1))
            .set_max_delay(reconnect.step(u32::MAX))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(self.timeout));
        for attempt in 1.. {
            match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                Ok(connection) => {
                    let _ = self.connection.set(connection);
                    tracing::info!("rate limits shared through Redis");
                    return;
                }
                Err(e) => {
                    self.warn(&e.to_string());
                    tokio::time::sleep(reconnect.step(attempt)).await;
                }
            }
        }
    }

    /// Logs that limits are counted locally, at most once a minute.
    fn warn(&self, why: &str) {
        metrics::counter!(crate::metrics::names::LIMIT_FALLBACKS).increment(1);
        let now = sdk_base::clock::now_unix_secs();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                reason = why,
                "shared rate limits unavailable; counting in this gateway"
            );
        }
    }
}
