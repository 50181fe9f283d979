//! Rate limits per client: each route with a `rate_limit` allows each client `per_second`
//! requests a second (or `per_minute` a minute) on average and `burst` at once (GCRA, the
//! generic cell rate algorithm: one stored time per client, no counters to reset).
//!
//! A client is the subject of its verified token, or else its address
//! ([`Origin`](crate::clients::Origin)). Limits are counted in this process by
//! [`governor`] unless `[gateway.rate_limit] redis_url` is set: then every gateway naming
//! the same Redis and prefix shares one count per client, kept by a script that runs the
//! same algorithm on Redis's clock ([`SharedLimits`]). While Redis cannot be reached, each
//! gateway counts alone (the limit then holds per gateway instead of across them), so an
//! outage of Redis neither lets every request through nor refuses them all.

mod shared;

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    clock::{Clock as _, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DefaultKeyedStateStore,
    Quota, RateLimiter,
};

pub use self::shared::SharedLimits;
use crate::config::RateLimit;

/// Who a limit is counted for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A verified token's subject.
    Subject(Arc<str>),
    /// An address.
    Addr(IpAddr),
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Subject(subject) => write!(f, "sub:{subject}"),
            ClientKey::Addr(addr) => write!(f, "ip:{addr}"),
        }
    }
}

/// Clients' cells in this process: governor's concurrent map, hashed with foldhash (seeded
/// per process; the keys are the clients' own, so not a fixed hash).
type LocalLimiter = RateLimiter<
    ClientKey,
    DefaultKeyedStateStore<ClientKey, foldhash::fast::RandomState>,
    DefaultClock,
    NoOpMiddleware<<DefaultClock as governor::clock::Clock>::Instant>,
>;

/// One route's limit.
#[derive(Debug)]
pub struct RouteLimiter {
    route: Arc<str>,
    rate: RateLimit,
    local: LocalLimiter,
    shared: Option<SharedLimits>,
}

impl RouteLimiter {
    /// A limit of `rate` per client on the route `route`, shared through `shared` if given.
    pub fn new(route: &str, rate: RateLimit, shared: Option<SharedLimits>) -> Self {
        let burst = NonZeroU32::new(rate.burst()).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rate.interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        RouteLimiter {
            route: route.into(),
            rate,
            local: RateLimiter::dashmap_with_hasher(quota, foldhash::fast::RandomState::default()),
            shared,
        }
    }

    /// Takes one request from `client`'s allowance, or says how long until it may try again.
    pub async fn check(&self, client: &ClientKey) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            if let Some(answer) = shared.check(&self.route, client, self.rate).await {
                return answer;
            }
        }
        self.local
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose allowance is full again, so the table holds only the clients
    /// seen within the last burst's worth of time.
    pub fn forget_idle(&self) {
        self.local.retain_recent();
        self.local.shrink_to_fit();
    }
}
