//! The one active health checker: the SDK's client-side checks and the registry server's
//! checks both run it, each with its own HTTP client and its own idea of what a verdict
//! changes (the SDK takes an instance out of rotation; the registry records its health).
//!
//! - [`HealthChecks`]: the schedule and the thresholds, with the one set of defaults.
//! - [`probe`]: what one probe's answer means: a 2xx ([`accepted`](crate::accepted))
//!   within the timeout passes; anything else fails, and says why.
//! - [`HealthStreak`]: when consecutive results change an instance's health.
//! - [`Checker`]: every instance probed on a schedule of its own, `interval` after its last
//!   probe started (or as soon as it ended, if it took longer), at most [`MAX_PROBES`] at
//!   once, so a hung instance costs only its own timeout and never delays the others; the
//!   streaks of instances that are gone are forgotten.
//!
//! Written here rather than taken from a crate: tower's `ready_cache` and linkerd's
//! `failure_accrual` judge the calls an instance serves, not probes of a health path, and
//! the checkers in gateways (pingora's `health_check`) come with their own HTTP stack and
//! runtime.

use std::{
    collections::{HashMap, HashSet},
    fmt::Display,
    future::Future,
    hash::Hash,
    sync::Mutex,
    time::Duration,
};

use tokio::{task::JoinSet, time::Instant};

use crate::sync::Unpoisoned as _;

/// Probes in flight at most, per checker.
pub const MAX_PROBES: usize = 64;

/// When probes run, and how many in a row change an instance's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthChecks {
    /// Time between the starts of two probes of one instance (default 10 s).
    pub interval: Duration,
    /// Time allowed for one probe (default 5 s).
    pub timeout: Duration,
    /// Failures in a row that mark an instance unhealthy (default 3).
    pub unhealthy_threshold: u32,
    /// Passes in a row that mark it healthy again (default 1).
    pub healthy_threshold: u32,
}

impl HealthChecks {
    /// The defaults, for the flags and settings that start from them.
    pub const DEFAULT: HealthChecks = HealthChecks {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        unhealthy_threshold: 3,
        healthy_threshold: 1,
    };
}

impl Default for HealthChecks {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The status it answered with, if it answered in time.
    pub status: Option<u16>,
    /// Why it failed, if it did not answer in time.
    pub error: Option<String>,
}

impl Probe {
    /// Whether the probe passed: a 2xx answer ([`accepted`](crate::accepted)).
    pub fn passed(&self) -> bool {
        self.status.is_some_and(crate::accepted)
    }
}

/// Runs one probe: `answer` is the request's future, giving the answer's status; it is
/// given `timeout` to finish.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use sdk_base::health::probe;
///
/// let ok = probe(Duration::from_secs(1), async { Ok::<_, std::io::Error>(204) }).await;
/// assert!(ok.passed());
/// let down = probe(Duration::from_secs(1), async { Ok::<_, std::io::Error>(503) }).await;
/// assert_eq!((down.passed(), down.status), (false, Some(503)));
/// # });
/// ```
pub async fn probe<F, E>(timeout: Duration, answer: F) -> Probe
where
    F: Future<Output = Result<u16, E>>,
    E: Display,
{
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(status)) => Probe {
            status: Some(status),
            error: None,
        },
        Ok(Err(e)) => Probe {
            status: None,
            error: Some(e.to_string()),
        },
        Err(_) => Probe {
            status: None,
            error: Some(format!("no answer within {timeout:?}")),
        },
    }
}

/// Consecutive passes or failures of one instance's probes.
///
/// ```
/// use sdk_base::health::HealthStreak;
///
/// let mut streak = HealthStreak::default();
/// assert_eq!(streak.record(false, 2, 3), None);
/// assert_eq!(streak.record(false, 2, 3), None);
/// assert_eq!(streak.record(false, 2, 3), Some(false), "three failures: unhealthy");
/// assert_eq!(streak.record(true, 2, 3), None);
/// assert_eq!(streak.record(true, 2, 3), Some(true), "two passes: healthy");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthStreak {
    passes: u32,
    failures: u32,
}

impl HealthStreak {
    /// Counts one probe; returns the health the thresholds now call for: `Some(true)` once
    /// `healthy_threshold` probes in a row passed, `Some(false)` once `unhealthy_threshold`
    /// in a row failed (a threshold of 0 counts as 1), `None` while the run is shorter.
    pub fn record(
        &mut self,
        passed: bool,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<bool> {
        if passed {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            (self.passes >= healthy_threshold.max(1)).then_some(true)
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures >= unhealthy_threshold.max(1)).then_some(false)
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

/// A probe that finished, and the health its streak now calls for.
#[derive(Debug)]
pub struct Finished<K> {
    /// The instance.
    pub key: K,
    /// The URL probed.
    pub url: String,
    /// What the probe found.
    pub probe: Probe,
    /// `Some(healthy)` when the streak crossed a threshold; `None` while it is shorter, or
    /// when the instance moved or went while the probe ran.
    pub verdict: Option<bool>,
}

/// The checker of a set of instances, each known by a key `K` and probed at its URL.
pub struct Checker<K> {
    checks: HealthChecks,
    probed: Mutex<HashMap<K, Probed>>,
}

impl<K> std::fmt::Debug for Checker<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("checks", &self.checks)
            .field("instances", &self.probed.locked().len())
            .finish()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Checker<K> {
    /// A checker with no instance yet.
    pub fn new(checks: HealthChecks) -> Self {
        Checker {
            checks,
            probed: Mutex::new(HashMap::new()),
        }
    }

    /// Its settings.
    pub fn checks(&self) -> HealthChecks {
        self.checks
    }

    /// Probes the instances `targets` names, each on its own schedule, and hands each
    /// finished probe to `finished`, in turn, until the task running it is dropped.
    pub async fn run<T, P, PF, V, VF>(&self, mut targets: T, probe: P, mut finished: V)
    where
        T: FnMut() -> Vec<(K, String)>,
        P: Fn(String) -> PF,
        PF: Future<Output = Probe> + Send + 'static,
        V: FnMut(Finished<K>) -> VF,
        VF: Future<Output = ()>,
    {
        let mut probes: JoinSet<(K, String, Probe)> = JoinSet::new();
        // Scheduling resolution: fine enough for the interval, never a busy loop.
        let step =
            (self.checks.interval / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(step);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    for (key, url) in self.due(targets(), probes.len()) {
                        let probing = probe(url.clone());
                        probes.spawn(async move { (key, url, probing.await) });
                    }
                }
                Some(done) = probes.join_next() => {
                    let Ok((key, url, probe)) = done else { continue };
                    let verdict = self.finish(&key, &url, probe.passed());
                    finished(Finished { key, url, probe, verdict }).await;
                }
            }
        }
    }

    /// The instances whose probe is due now (marked in flight), at most as many as keep
    /// `in_flight` under [`MAX_PROBES`]; instances no longer among `targets` are forgotten.
    fn due(&self, targets: Vec<(K, String)>, mut in_flight: usize) -> Vec<(K, String)> {
        let now = Instant::now();
        let mut probed = self.probed.locked();
        let mut live = HashSet::with_capacity(targets.len());
        let mut due = Vec::new();
        for (key, url) in targets {
            let entry = probed.entry(key.clone()).or_insert_with(|| Probed {
                url: url.clone(),
                due: now,
                in_flight: false,
                streak: HealthStreak::default(),
            });
            if entry.url != url {
                // A new address starts a new streak.
                entry.url.clone_from(&url);
                entry.due = now;
                entry.streak = HealthStreak::default();
            }
            if !entry.in_flight && entry.due <= now && in_flight < MAX_PROBES {
                entry.in_flight = true;
                entry.due = now + self.checks.interval;
                in_flight += 1;
                due.push((key.clone(), url));
            }
            live.insert(key);
        }
        probed.retain(|key, p| p.in_flight || live.contains(key));
        due
    }

    /// Counts a scheduled probe's result: the instance may be probed again when due.
    fn finish(&self, key: &K, url: &str, passed: bool) -> Option<bool> {
        let mut probed = self.probed.locked();
        let entry = probed.get_mut(key)?;
        entry.in_flight = false;
        entry.due = entry.due.max(Instant::now());
        if entry.url != url {
            return None; // the instance moved while the probe ran
        }
        self.count(entry, passed)
    }

    /// Counts the result of a probe made outside the schedule (an on-demand check), in the
    /// same streak as the scheduled ones.
    pub fn record(&self, key: K, url: &str, passed: bool) -> Option<bool> {
        let now = Instant::now();
        let mut probed = self.probed.locked();
        let entry = probed.entry(key).or_insert_with(|| Probed {
            url: url.to_owned(),
            due: now,
            in_flight: false,
            streak: HealthStreak::default(),
        });
        if entry.url != url {
            return None;
        }
        self.count(entry, passed)
    }

    fn count(&self, entry: &mut Probed, passed: bool) -> Option<bool> {
        entry.streak.record(
            passed,
            self.checks.healthy_threshold,
            self.checks.unhealthy_threshold,
        )
    }

    /// Forgets the instances `keep` says no to (not those with a probe in flight).
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.probed
            .locked()
            .retain(|key, p| p.in_flight || keep(key));
    }

    /// How many instances it keeps a streak for.
    pub fn len(&self) -> usize {
        self.probed.locked().len()
    }

    /// Whether it keeps no streak.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    /// Each instance on its own schedule: a hung one is probed once per interval and never
    /// holds the others back; two failures in a row mark the failing one unhealthy, and
    /// an instance that leaves the targets is forgotten.
    #[tokio::test(start_paused = true)]
    async fn each_instance_is_probed_on_its_own_schedule() {
        let checks = HealthChecks {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        };
        let checker = Arc::new(Checker::<&'static str>::new(checks));
        let gone = Arc::new(AtomicBool::new(false));
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (checker, gone, verdicts) = (checker.clone(), gone.clone(), verdicts.clone());
            tokio::spawn(async move {
                let targets = || {
                    let mut t = vec![("up", "http://up".to_owned())];
                    if !gone.load(Ordering::SeqCst) {
                        t.push(("down", "http://down".to_owned()));
                        t.push(("hung", "http://hung".to_owned()));
                    }
                    t
                };
                let probe_one = move |url: String| {
                    probe(checks.timeout, async move {
                        match url.as_str() {
                            "http://up" => Ok(200),
                            "http://down" => Ok(503),
                            _ => std::future::pending::<Result<u16, std::io::Error>>().await,
                        }
                    })
                };
                let record = |done: Finished<&'static str>| {
                    if let Some(healthy) = done.verdict {
                        verdicts.locked().push((done.key, healthy));
                    }
                    async {}
                };
                checker.run(targets, probe_one, record).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let seen = verdicts.locked().clone();
        assert_eq!(seen.iter().filter(|v| **v == ("up", true)).count(), 3);
        assert!(seen.contains(&("down", false)) && seen.contains(&("hung", false)));
        gone.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(checker.len(), 1, "the instances that left are forgotten");
        task.abort();
    }
}
