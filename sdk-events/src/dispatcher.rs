//! The dispatcher: claims due deliveries under a lease, makes each attempt through the SDK's
//! HTTP pipeline (one pooled client, a breaker per handler origin, a deadline per attempt),
//! signed per Standard Webhooks, and records how it ended.
//!
//! - A 2xx delivers. `410 Gone` dead-letters the delivery and turns its subscription off.
//! - Anything else (another status, a refused connection, a timeout) is retried on the
//!   schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each ±20 %), or after the handler's
//!   `Retry-After` when it said one (capped at the schedule's longest step); after the last
//!   attempt the delivery is dead: listed by the API, and re-driven from there.
//! - While a handler's breaker is open nothing reaches it: its deliveries wait the breaker
//!   out without spending attempts.
//! - A dispatcher killed mid-attempt loses nothing: its leases run out and another (or the
//!   same, restarted) takes the deliveries again, with the same `webhook-id`. One shut down
//!   gracefully stops claiming, lets attempts in flight finish within the grace period, and
//!   gives back the leases of those that did not.

use std::{sync::Arc, time::Duration};

use sdk::{
    retry::{Backoff as _, ScheduledBackoff},
    ServiceError, ServiceSdk,
};
use tokio::{sync::Notify, task::JoinSet};

use crate::{
    clock::{ms, rfc3339, Clock},
    signature::{signature_header, Secret, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP},
    store::{Claimed, Settlement, Store},
};

/// How the dispatcher works.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Deliveries in flight at once (default 64).
    pub concurrency: usize,
    /// How long a claim holds a delivery: longer than an attempt may take (default 60 s).
    pub lease: Duration,
    /// One attempt's deadline (default 15 s).
    pub attempt_timeout: Duration,
    /// How often to look for due work when nothing woke the dispatcher (default 250 ms).
    pub poll: Duration,
    /// The least time between two claims (default 10 ms): deliveries published or freed
    /// meanwhile are claimed together, one write for many instead of one each.
    pub claim_interval: Duration,
    /// The delays between attempts (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h,
    /// ±20 %): one attempt more than it has steps.
    pub schedule: ScheduledBackoff,
    /// The longest a delivery waits for a handler's open breaker before it is looked at
    /// again (default 5 s); it is due as soon as the breaker admits a probe.
    pub breaker_wait: Duration,
    /// On shutdown, how long attempts in flight may take (default 10 s).
    pub shutdown_grace: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        DispatcherConfig {
            concurrency: 64,
            lease: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(15),
            poll: Duration::from_millis(250),
            claim_interval: Duration::from_millis(10),
            schedule: ScheduledBackoff::new(vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ])
            .spread(0.2),
            breaker_wait: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl DispatcherConfig {
    /// Attempts a delivery gets before it is dead: one more than the schedule's steps.
    pub fn max_attempts(&self) -> i64 {
        i64::try_from(self.schedule.steps.len()).unwrap_or(i64::MAX - 1) + 1
    }
}

/// What one attempt came to, before it is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The handler answered with this status (and maybe a `Retry-After`).
    Answered {
        /// The status.
        status: u16,
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// No answer: the connection failed or the attempt timed out.
    Failed(String),
    /// The handler's breaker is open: nothing was sent. It admits a probe after
    /// `retry_after`.
    BreakerOpen {
        /// How long until the breaker admits a probe.
        retry_after: Duration,
    },
    /// The handler cannot be called at all (its URL is not usable).
    Unusable(String),
}

/// Judges an attempt: the delivery's next state, given the attempts made before this one.
///
/// The one home of the webhook contract (Standard Webhooks, as Svix keeps it), which is not
/// the SDK's call class ([`sdk::outcome::StatusClass`]) on purpose: only an answer
/// [`sdk_base::accepted`] takes delivers (a 2xx; a redirect does not), 410 unsubscribes, and every other answer, a 4xx included, is retried
/// on the schedule, since a receiver's refusal is often a deploy that is fixed later. Whose
/// fault an attempt is, for the handler's circuit breaker, is the SDK's class: the calls go
/// through the SDK's pipeline.
///
/// ```
/// use std::time::Duration;
/// use sdk_events::dispatcher::{decide, Attempt, DispatcherConfig};
/// use sdk_events::store::Settlement;
///
/// let config = DispatcherConfig::default();
/// let ok = Attempt::Answered { status: 204, retry_after: None };
/// assert_eq!(decide(&ok, 0, 1_000, &config), Settlement::Delivered { status: 204 });
/// let busy = Attempt::Answered { status: 429, retry_after: Some(Duration::from_secs(90)) };
/// let Settlement::Retry { due_ms, .. } = decide(&busy, 0, 1_000, &config) else { panic!() };
/// assert_eq!(due_ms, 91_000);
/// ```
pub fn decide(
    attempt: &Attempt,
    attempts_before: i64,
    now_ms: i64,
    config: &DispatcherConfig,
) -> Settlement {
    let (status, retry_after, error) = match attempt {
        Attempt::Answered { status, .. } if sdk_base::accepted(*status) => {
            return Settlement::Delivered { status: *status }
        }
        Attempt::Answered { status: 410, .. } => return Settlement::Gone,
        Attempt::Answered {
            status,
            retry_after,
        } => (
            Some(*status),
            *retry_after,
            format!("the handler answered {status}"),
        ),
        Attempt::Failed(error) => (None, None, error.clone()),
        Attempt::BreakerOpen { retry_after } => {
            // Due when the breaker admits a probe again, looked at no later than
            // `breaker_wait`.
            let wait = (*retry_after).clamp(Duration::from_millis(10), config.breaker_wait);
            return Settlement::Retry {
                due_ms: now_ms.saturating_add(ms(wait)),
                status: None,
                error: "the handler's circuit breaker is open".into(),
                counted: false,
            };
        }
        Attempt::Unusable(error) => {
            return Settlement::Dead {
                status: None,
                error: error.clone(),
            }
        }
    };
    let attempts = attempts_before.saturating_add(1);
    if attempts >= config.max_attempts() {
        return Settlement::Dead {
            status,
            error: format!("{error}; gave up after {attempts} attempts"),
        };
    }
    let longest = config
        .schedule
        .steps
        .iter()
        .max()
        .copied()
        .unwrap_or_default();
    let delay = match retry_after {
        Some(after) => after.min(longest),
        None => config
            .schedule
            .delay(u32::try_from(attempts).unwrap_or(u32::MAX)),
    };
    Settlement::Retry {
        due_ms: now_ms.saturating_add(ms(delay)),
        status,
        error,
        counted: true,
    }
}

/// The body a handler receives: `{"id", "action", "timestamp", "payload"}`.
pub fn delivery_body(event_id: &str, action: &str, event_ms: i64, payload: &str) -> String {
    // The payload is stored as validated JSON text: embedded as it is, never parsed again.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"id\":{},\"action\":{},\"timestamp\":{},\"payload\":{payload}}}",
        quote(event_id),
        quote(action),
        quote(&rfc3339(event_ms)),
    )
}

/// Claims and delivers until told to stop.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    store: Store,
    sdk: ServiceSdk,
    config: DispatcherConfig,
    clock: Clock,
    /// This dispatcher's name in leases: unique per process start.
    id: String,
    wake: Arc<Notify>,
}

impl Dispatcher {
    /// A dispatcher over `store`, calling handlers through `sdk`. A dispatcher for tenants'
    /// handlers should get an SDK whose transport refuses internal addresses
    /// ([`TransportConfig::addresses`](sdk::transport::TransportConfig::addresses) with
    /// [`AddressPolicy::public_only`](sdk_base::https::AddressPolicy::public_only)), as the
    /// `sdk-events` binary builds it: the address is then judged after DNS, where the API's
    /// check at subscription time cannot see.
    pub fn new(store: Store, sdk: ServiceSdk, config: DispatcherConfig, clock: Clock) -> Self {
        Dispatcher {
            store,
            sdk,
            config,
            clock,
            id: format!("d{:016x}", fastrand::u64(..)),
            wake: Arc::new(Notify::new()),
        }
    }

    /// A handle that makes the dispatcher look for work at once (after a publish).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `shutdown` completes; then finishes or gives back what is in flight.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut in_flight = JoinSet::new();
        let mut claims = 0u64;
        let mut last_claim: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            if let Some(last) = last_claim {
                // Each claim is a write: publishes and finished attempts arriving within
                // the interval are answered by one claim, not one each.
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep_until(last + self.config.claim_interval) => {}
                }
            }
            while in_flight.try_join_next().is_some() {}
            let free = self.config.concurrency.saturating_sub(in_flight.len());
            let mut claimed = Vec::new();
            if free > 0 {
                last_claim = Some(tokio::time::Instant::now());
                claims += 1;
                let owner = format!("{}:{claims}", self.id);
                let now = self.clock.now_ms();
                let until = now.saturating_add(ms(self.config.lease));
                let limit = i64::try_from(free).unwrap_or(64);
                match self.store.claim(&owner, now, until, limit).await {
                    Ok(found) => claimed = found.into_iter().map(|c| (owner.clone(), c)).collect(),
                    Err(e) => tracing::warn!(error = %e, "could not claim deliveries"),
                }
            }
            let full = claimed.len() == free && free > 0;
            for (owner, delivery) in claimed {
                let this = self.clone();
                in_flight.spawn(async move { this.deliver(&owner, delivery).await });
            }
            if full {
                continue; // more may be due
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        self.stop(in_flight).await;
    }

    async fn stop(&self, mut in_flight: JoinSet<()>) {
        let finish = async { while in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace, finish)
            .await
            .is_err()
        {
            in_flight.abort_all();
        }
        match self.store.release(&format!("{}:", self.id)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "gave back unfinished deliveries"),
            Err(e) => {
                tracing::warn!(error = %e, "could not give back leases; they run out instead")
            }
        }
    }

    /// One attempt at `delivery`, recorded.
    async fn deliver(&self, owner: &str, delivery: Claimed) {
        let attempt = self.attempt(&delivery).await;
        let now = self.clock.now_ms();
        let settlement = decide(&attempt, delivery.attempts, now, &self.config);
        let outcome = match &settlement {
            Settlement::Delivered { .. } => "delivered",
            Settlement::Retry { counted: false, .. } => "breaker_open",
            Settlement::Retry { .. } => "retry",
            Settlement::Dead { .. } => "dead",
            Settlement::Gone => "gone",
        };
        metrics::counter!("sdk_events_attempts_total", "outcome" => outcome).increment(1);
        match &settlement {
            Settlement::Delivered { .. } => {}
            Settlement::Gone => {
                tracing::warn!(subscription = %delivery.subscription, "handler answered 410 Gone; subscription disabled")
            }
            other => {
                tracing::debug!(subscription = %delivery.subscription, outcome = ?other, "delivery not made")
            }
        }
        if let Err(e) = self
            .store
            .settle(delivery.seq, owner, delivery.attempts, &settlement, now)
            .await
        {
            // The lease runs out and the delivery is made again: a duplicate, never a loss.
            tracing::warn!(error = %e, delivery = delivery.seq, "could not record a delivery");
        }
    }

    async fn attempt(&self, delivery: &Claimed) -> Attempt {
        let client = match self.sdk.client_for_url(&delivery.handler) {
            Ok(client) => client,
            Err(e) => return Attempt::Unusable(e.to_string()),
        };
        let now = self.clock.now();
        let timestamp = sdk_base::clock::unix_secs(now);
        let mut secrets = Vec::with_capacity(2);
        match Secret::parse(&delivery.secret) {
            Ok(secret) => secrets.push(secret),
            Err(e) => return Attempt::Unusable(format!("the subscription's {e}")),
        }
        if let Some((previous, until)) = &delivery.previous_secret {
            if *until > crate::clock::to_ms(now) {
                if let Ok(previous) = Secret::parse(previous) {
                    secrets.push(previous);
                }
            }
        }
        let body = delivery_body(
            &delivery.event_id,
            &delivery.action,
            delivery.event_ms,
            &delivery.payload,
        );
        let signers: Vec<&Secret> = secrets.iter().collect();
        let signature = signature_header(&signers, &delivery.event_id, timestamp, body.as_bytes());
        let path = delivery
            .handler
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()))
            .unwrap_or_else(|| "/".into());
        let result = client
            .post(&path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(WEBHOOK_ID, delivery.event_id.as_str())
            .header(WEBHOOK_TIMESTAMP, timestamp)
            .header(WEBHOOK_SIGNATURE, signature.as_str())
            .body(body)
            .timeout(self.config.attempt_timeout)
            .response()
            .await;
        match result {
            Ok(response) => Attempt::Answered {
                status: response.status().as_u16(),
                retry_after: sdk::retry::retry_after(response.headers()),
            },
            Err(e) => match e.last_attempt() {
                ServiceError::CircuitOpen { retry_after, .. } => Attempt::BreakerOpen {
                    retry_after: *retry_after,
                },
                ServiceError::InvalidRequest { reason, .. } => Attempt::Unusable(reason.clone()),
                _ => Attempt::Failed(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DispatcherConfig {
        DispatcherConfig {
            schedule: ScheduledBackoff::new(vec![Duration::from_secs(5), Duration::from_secs(300)]),
            ..DispatcherConfig::default()
        }
    }

    /// Every status, judged by the one delivery rule (`sdk_base::accepted`): delivered when
    /// it holds, unsubscribed on 410, retried on the schedule otherwise (a 3xx and a 4xx too).
    #[test]
    fn a_delivery_is_settled_by_the_one_rule() {
        for status in 100..600 {
            let answered = Attempt::Answered {
                status,
                retry_after: None,
            };
            let settled = decide(&answered, 0, 0, &config());
            match settled {
                Settlement::Delivered { .. } => assert!(sdk_base::accepted(status), "{status}"),
                Settlement::Gone => assert_eq!(status, 410),
                Settlement::Retry { .. } => assert!(!sdk_base::accepted(status), "{status}"),
                Settlement::Dead { .. } => panic!("{status} gave up at the first attempt"),
            }
        }
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let failed = Attempt::Answered {
            status: 500,
            retry_after: None,
        };
        let dues: Vec<_> = (0..2)
            .map(|before| match decide(&failed, before, 0, &config()) {
                Settlement::Retry {
                    due_ms, counted, ..
                } => {
                    assert!(counted);
                    due_ms
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(dues, [5_000, 300_000]);
        assert!(matches!(
            decide(&failed, 2, 0, &config()),
            Settlement::Dead {
                status: Some(500),
                ..
            }
        ));
    }

    #[test]
    fn honours_retry_after_up_to_the_longest_step_and_waits_out_breakers() {
        let after = |secs| Attempt::Answered {
            status: 503,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let due = |attempt: &Attempt| match decide(attempt, 0, 0, &config()) {
            Settlement::Retry { due_ms, .. } => due_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(due(&after(42)), 42_000);
        assert_eq!(due(&after(86_400)), 300_000);
        assert!(matches!(
            decide(
                &Attempt::BreakerOpen {
                    retry_after: Duration::from_secs(60)
                },
                1,
                0,
                &config()
            ),
            Settlement::Retry {
                counted: false,
                due_ms: 5_000,
                ..
            }
        ));
        let gone = Attempt::Answered {
            status: 410,
            retry_after: None,
        };
        assert_eq!(decide(&gone, 0, 0, &config()), Settlement::Gone);
    }

    #[test]
    fn the_body_embeds_the_payload() {
        let body = delivery_body("msg_1", "user.created", 0, r#"{"user_id":"u1"}"#);
        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(value["payload"]["user_id"], "u1");
        assert_eq!(value["action"], "user.created");
        assert_eq!(value["timestamp"], "1970-01-01T00:00:00.000Z");
    }
}
