//! Active health checks: every instance that declares a `health_check_path` is probed on a
//! schedule of its own, `interval` after its last probe started (or as soon as it ended, if
//! it took longer). `unhealthy_threshold` failures in a row mark it unhealthy,
//! `healthy_threshold` passes mark it healthy again, and clients leave unhealthy instances
//! out of rotation.
//!
//! Probes run concurrently, at most [`MAX_PROBES`] at once, so a hung instance costs only its
//! own timeout and never delays the others. `https` instances are probed through the same
//! rustls client the registry clients use (Mozilla roots, or the server's `--probe-ca`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use tokio::{task::JoinSet, time::Instant};

use super::{writer::Op, Registry};
use crate::{
    backend::client::{http_client, HttpClient},
    HealthStatus, HealthStreak,
};

/// Probes in flight at most.
const MAX_PROBES: usize = 64;

/// Health-check settings of the server.
#[derive(Clone, Copy, Debug)]
pub struct HealthChecks {
    /// Time between the starts of two probes of one instance.
    pub interval: Duration,
    /// Time allowed for one probe.
    pub timeout: Duration,
    /// Failures in a row that mark an instance unhealthy.
    pub unhealthy_threshold: u32,
    /// Passes in a row that mark it healthy.
    pub healthy_threshold: u32,
}

impl Default for HealthChecks {
    fn default() -> Self {
        HealthChecks {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            unhealthy_threshold: 3,
            healthy_threshold: 1,
        }
    }
}

/// One instance's schedule and streak.
struct Probed {
    /// The URL probed; a new address starts a new streak.
    url: String,
    due: Instant,
    in_flight: bool,
    streak: HealthStreak,
}

type Key = (String, String);

pub(super) fn spawn(
    registry: Arc<Registry>,
    settings: HealthChecks,
    tls: rustls::ClientConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = http_client(tls, settings.timeout);
        let mut probed: HashMap<Key, Probed> = HashMap::new();
        let mut probes: JoinSet<(Key, String, bool)> = JoinSet::new();
        // Scheduling resolution: fine enough for the interval, never a busy loop.
        let step = (settings.interval / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(step);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let targets = registry.backend.probe_targets();
                    schedule(targets, &mut probed, &mut probes, &client, settings);
                }
                Some(done) = probes.join_next() => {
                    let Ok((key, url, passed)) = done else { continue };
                    record(&registry, &mut probed, key, &url, passed, settings).await;
                }
            }
        }
    })
}

/// Starts the probes that are due, and forgets instances that are gone.
fn schedule(
    targets: Vec<(String, String, String)>,
    probed: &mut HashMap<Key, Probed>,
    probes: &mut JoinSet<(Key, String, bool)>,
    client: &HttpClient,
    settings: HealthChecks,
) {
    let now = Instant::now();
    let mut live = std::collections::HashSet::with_capacity(targets.len());
    for (service, id, url) in targets {
        let key = (service, id);
        let entry = probed.entry(key.clone()).or_insert_with(|| Probed {
            url: url.clone(),
            due: now,
            in_flight: false,
            streak: HealthStreak::default(),
        });
        if entry.url != url {
            // A new address starts a new streak.
            *entry = Probed {
                url: url.clone(),
                due: now,
                in_flight: entry.in_flight,
                streak: HealthStreak::default(),
            };
        }
        if !entry.in_flight && entry.due <= now && probes.len() < MAX_PROBES {
            entry.in_flight = true;
            entry.due = now + settings.interval;
            let (client, timeout, key) = (client.clone(), settings.timeout, key.clone());
            probes.spawn(async move {
                let passed = probe(&client, &url, timeout).await;
                (key, url, passed)
            });
        }
        live.insert(key);
    }
    probed.retain(|key, p| p.in_flight || live.contains(key));
}

async fn probe(client: &HttpClient, url: &str, timeout: Duration) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let request = match http::Request::get(uri).body(Full::new(Bytes::new())) {
        Ok(request) => request,
        Err(_) => return false,
    };
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => sdk_base::accepted(response.status().as_u16()),
        Ok(Err(e)) => {
            tracing::debug!(%url, error = %crate::describe(&e), "health probe failed");
            false
        }
        Err(_) => {
            tracing::debug!(%url, "health probe timed out");
            false
        }
    }
}

/// Counts a probe's outcome and, when a threshold is crossed, records the new health.
async fn record(
    registry: &Registry,
    probed: &mut HashMap<Key, Probed>,
    key: Key,
    url: &str,
    passed: bool,
    settings: HealthChecks,
) {
    let Some(entry) = probed.get_mut(&key) else {
        return;
    };
    entry.in_flight = false;
    entry.due = entry.due.max(Instant::now());
    if entry.url != url {
        return; // the instance moved while the probe ran
    }
    let verdict = entry.streak.record(
        passed,
        settings.healthy_threshold,
        settings.unhealthy_threshold,
    );
    let health = match verdict {
        Some(true) => HealthStatus::Healthy,
        Some(false) => HealthStatus::Unhealthy,
        None => return,
    };
    let (service, id) = key;
    let current = registry.backend.record(&service, &id).map(|r| r.health);
    if current.is_none_or(|h| h == health) {
        return;
    }
    tracing::info!(%service, %id, ?health, "health changed");
    let op = Op::SetHealth {
        service: service.clone(),
        id: id.clone(),
        health,
    };
    if let Err(e) = registry.writer.write(op).await {
        tracing::warn!(%service, %id, error = %e, "could not record a health change");
    }
}
