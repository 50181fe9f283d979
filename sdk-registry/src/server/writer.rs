//! The one writer: every change to membership or health goes through it, in order. A change
//! is checked against the current state, saved, and only then applied in memory and shown to
//! readers and watchers. If the save fails, the caller gets the error and memory stays as it
//! was, so nobody ever sees a change that a restart would take back.
//!
//! Writes are group-committed: the writer takes every change waiting when it starts a
//! transaction (up to [`MAX_BATCH`]), so under load one fsync serves many of them.

use std::{collections::HashMap, io, sync::Arc};

use tokio::sync::{mpsc, oneshot};

use super::store::{Change, Store};
use crate::{HealthStatus, InMemoryBackend, RegistryError, ServiceInstance};

/// Changes committed in one transaction at most.
const MAX_BATCH: usize = 1024;

/// A change asked of the writer.
#[derive(Debug)]
pub(crate) enum Op {
    Register(ServiceInstance),
    Deregister {
        service: String,
        id: String,
    },
    SetHealth {
        service: String,
        id: String,
        health: HealthStatus,
    },
    /// Instances whose TTL passed (the evictor's).
    Evict(Vec<(String, String)>),
    /// A clean stop: merge the write-ahead log into the data file.
    Checkpoint,
}

impl Op {
    /// The `op` label of `sdk_registry_writes_total`.
    fn kind(&self) -> &'static str {
        match self {
            Op::Register(_) => "register",
            Op::Deregister { .. } => "deregister",
            Op::SetHealth { .. } => "set_health",
            Op::Evict(_) => "evict",
            Op::Checkpoint => "checkpoint",
        }
    }
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// Refused as it stands (unknown instance).
    #[error(transparent)]
    Refused(#[from] RegistryError),
    /// The change could not be saved; nothing changed. Of kind `StorageFull` when the
    /// disk is full.
    #[error("could not save the change: {0}")]
    Save(Arc<io::Error>),
    /// The server is shutting down.
    #[error("the registry is shutting down")]
    Closed,
}

type Reply = oneshot::Sender<Result<(), WriteError>>;

/// The handle handlers send changes through.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    queue: mpsc::Sender<(Op, Reply)>,
}

/// Whether the data file takes writes: set by every commit, read by `/health` and
/// `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Storage {
    full: std::sync::atomic::AtomicBool,
}

impl Storage {
    /// Whether the last save failed because the disk is full (or the start could not be
    /// counted).
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_full(&self, full: bool) {
        self.full.store(full, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("sdk_registry_storage_full").set(f64::from(u8::from(full)));
    }
}

impl Writer {
    /// Starts the writer task over `backend`, saving to `store` when there is one, and
    /// keeping `storage` told whether the disk takes writes.
    pub(crate) fn spawn(
        backend: InMemoryBackend,
        store: Option<Store>,
        storage: Arc<Storage>,
    ) -> Writer {
        let saver = Saver {
            backend,
            store,
            storage,
        };
        Writer {
            queue: sdk_server::group_commit::spawn(saver, MAX_BATCH),
        }
    }

    /// Makes `op` and returns once it is saved and visible (or refused, or failed).
    pub(crate) async fn write(&self, op: Op) -> Result<(), WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((op, reply))
            .await
            .map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)?
    }
}

/// What the writer commits to: memory, the data file (when there is one), and whether the
/// disk takes writes.
struct Saver {
    backend: InMemoryBackend,
    store: Option<Store>,
    storage: Arc<Storage>,
}

impl sdk_server::group_commit::Commit for Saver {
    type Job = (Op, Reply);

    /// Plans the batch against memory, saves what it changes in one transaction, and only
    /// then applies it in memory and answers each op.
    async fn commit(&mut self, batch: Vec<(Op, Reply)>) {
        let Saver {
            backend,
            store,
            storage,
        } = self;
        let planned = plan(backend, batch.into_iter());
        let changes: Vec<Change> = planned
            .iter()
            .filter_map(|p| p.outcome.as_ref().ok())
            .flat_map(|p| p.changes.iter().cloned())
            .collect();
        let started = std::time::Instant::now();
        let saved = match store.as_mut() {
            Some(store) => store.commit(&changes).await.map_err(Arc::new),
            None => Ok(()),
        };
        if store.is_some() {
            metrics::histogram!("sdk_registry_commit_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        match &saved {
            Err(e) => {
                tracing::error!(error = %e, changes = changes.len(), "a write could not be saved; nothing changed");
                storage.set_full(e.kind() == io::ErrorKind::StorageFull);
            }
            // Room again: the disk took this batch.
            Ok(()) if !changes.is_empty() && storage.is_full() => {
                tracing::info!("the data file takes writes again");
                storage.set_full(false);
            }
            Ok(()) => {}
        }
        if let Some(store) = store.as_mut() {
            if planned.iter().any(|p| matches!(p.op, Op::Checkpoint)) {
                store.checkpoint().await;
            }
        }
        for Planned { op, outcome, reply } in planned {
            let (kind, result) = (op.kind(), &outcome);
            let verdict = match (result, &saved) {
                (Err(_), _) => "refused",
                (Ok(_), Err(_)) => "failed",
                (Ok(_), Ok(())) => "saved",
            };
            metrics::counter!("sdk_registry_writes_total", "op" => kind, "result" => verdict)
                .increment(1);
            let result = match (outcome, &saved) {
                (Err(refused), _) => Err(WriteError::Refused(refused)),
                (Ok(_), Err(e)) => Err(WriteError::Save(e.clone())),
                (Ok(effect), Ok(())) => {
                    apply(backend, op, effect);
                    Ok(())
                }
            };
            let _ = reply.send(result);
        }
    }
}

/// A checked change: what it writes, and the health it leaves.
#[derive(Debug)]
struct Effect {
    changes: Vec<Change>,
    health: HealthStatus,
}

struct Planned {
    op: Op,
    outcome: Result<Effect, RegistryError>,
    reply: Reply,
}

/// (service, id) → the state the earlier ops of a batch leave (None: removed).
type Pending = HashMap<(String, String), Option<(ServiceInstance, HealthStatus)>>;

/// Checks each op against memory and the ops before it in the batch.
fn plan(backend: &InMemoryBackend, ops: impl Iterator<Item = (Op, Reply)>) -> Vec<Planned> {
    let mut batch = Batch {
        backend,
        pending: Pending::new(),
        written: std::collections::HashSet::new(),
    };
    ops.map(|(op, reply)| {
        let outcome = batch.check(&op);
        if let Ok(effect) = &outcome {
            batch.record(effect);
        }
        Planned { op, outcome, reply }
    })
    .collect()
}

/// A batch being planned: memory, and what its earlier ops leave.
struct Batch<'a> {
    backend: &'a InMemoryBackend,
    pending: Pending,
    /// The instances an earlier op of this batch writes.
    written: std::collections::HashSet<(String, String)>,
}

impl Batch<'_> {
    /// The state of `service/id` after the earlier ops (memory's when none touched it).
    fn current(&mut self, service: &str, id: &str) -> Option<(ServiceInstance, HealthStatus)> {
        let backend = self.backend;
        self.pending
            .entry((service.to_owned(), id.to_owned()))
            .or_insert_with(|| {
                backend
                    .record(service, id)
                    .map(|r| (r.instance.clone(), r.health))
            })
            .clone()
    }

    /// What `op` writes and the health it leaves, or why it is refused.
    fn check(&mut self, op: &Op) -> Result<Effect, RegistryError> {
        let effect = |changes, health| Ok(Effect { changes, health });
        match op {
            Op::Register(instance) => {
                let current = self.current(&instance.service, &instance.id);
                let health = match &current {
                    Some((known, health)) if known == instance => *health,
                    _ => HealthStatus::Unknown,
                };
                if current == Some((instance.clone(), health)) {
                    return effect(Vec::new(), health); // a refresh: already saved as it is
                }
                effect(vec![Change::Put(instance.clone(), health)], health)
            }
            Op::Deregister { service, id } => match self.current(service, id) {
                Some(_) => {
                    let delete = Change::Delete {
                        service: service.clone(),
                        id: id.clone(),
                    };
                    effect(vec![delete], HealthStatus::Unknown)
                }
                None => Err(unknown(service, id)),
            },
            Op::SetHealth {
                service,
                id,
                health,
            } => match self.current(service, id) {
                Some((_, known)) if known == *health => effect(Vec::new(), *health),
                Some((instance, _)) => effect(vec![Change::Put(instance, *health)], *health),
                None => Err(unknown(service, id)),
            },
            Op::Checkpoint => effect(Vec::new(), HealthStatus::Unknown),
            Op::Evict(expired) => {
                let changes = expired
                    .iter()
                    // Still there and still past its deadline: an instance registered again
                    // since it was found expired (in this batch or before) stays.
                    .filter(|(service, id)| {
                        let key = (service.clone(), id.clone());
                        !self.written.contains(&key) && self.backend.is_expired(service, id)
                    })
                    .map(|(service, id)| Change::Delete {
                        service: service.clone(),
                        id: id.clone(),
                    })
                    .collect();
                effect(changes, HealthStatus::Unknown)
            }
        }
    }

    /// What the ops after this one see.
    fn record(&mut self, effect: &Effect) {
        for change in &effect.changes {
            let (key, state) = match change {
                Change::Put(instance, health) => (
                    (instance.service.clone(), instance.id.clone()),
                    Some((instance.clone(), *health)),
                ),
                Change::Delete { service, id } => ((service.clone(), id.clone()), None),
            };
            self.written.insert(key.clone());
            self.pending.insert(key, state);
        }
    }
}

/// Applies a saved op to memory (which publishes it to watchers).
fn apply(backend: &InMemoryBackend, op: Op, effect: Effect) {
    match op {
        Op::Register(instance) => {
            backend.upsert(instance, Some(effect.health));
        }
        Op::Deregister { service, id } => {
            backend.remove(&service, &id);
        }
        Op::SetHealth {
            service,
            id,
            health,
        } => {
            let _ = backend.update_health(&service, &id, health);
        }
        Op::Checkpoint => {}
        Op::Evict(_) => {
            for change in effect.changes {
                if let Change::Delete { service, id } = change {
                    backend.remove(&service, &id);
                }
            }
        }
    }
}

fn unknown(service: &str, id: &str) -> RegistryError {
    RegistryError::UnknownInstance {
        service: service.to_owned(),
        id: id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::RegistryBackend;

    #[tokio::test(start_paused = true)]
    async fn an_instance_registered_again_after_it_expired_is_not_evicted() {
        let backend = InMemoryBackend::evicting_manually(Duration::from_secs(10), 0);
        let writer = Writer::spawn(backend.clone(), None, Arc::default());
        let a = ServiceInstance::new("orders", ("127.0.0.1", 1)).with_id("a");
        writer.write(Op::Register(a.clone())).await.expect("saved");
        tokio::time::advance(Duration::from_secs(11)).await;
        let expired = backend.take_expired();
        assert_eq!(expired, [("orders".to_owned(), "a".to_owned())]);
        // Registered again before the eviction reached the writer.
        writer.write(Op::Register(a)).await.expect("saved");
        writer.write(Op::Evict(expired)).await.expect("saved");
        assert_eq!(backend.instances("orders").await.expect("ok").len(), 1);
        // Its new deadline still counts.
        tokio::time::advance(Duration::from_secs(11)).await;
        let expired = backend.take_expired();
        assert_eq!(expired.len(), 1, "looked at again and found expired");
        writer.write(Op::Evict(expired)).await.expect("saved");
        assert!(backend.instances("orders").await.expect("ok").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_ops_change_nothing_and_others_in_the_batch_go_through() {
        let backend = InMemoryBackend::evicting_manually(Duration::from_secs(10), 0);
        let writer = Writer::spawn(backend.clone(), None, Arc::default());
        let unknown = writer
            .write(Op::Deregister {
                service: "orders".into(),
                id: "nobody".into(),
            })
            .await;
        assert!(matches!(
            unknown,
            Err(WriteError::Refused(RegistryError::UnknownInstance { .. }))
        ));
        let a = ServiceInstance::new("orders", ("127.0.0.1", 1)).with_id("a");
        writer.write(Op::Register(a)).await.expect("saved");
        let marked = Op::SetHealth {
            service: "orders".into(),
            id: "a".into(),
            health: HealthStatus::Unhealthy,
        };
        writer.write(marked).await.expect("saved");
        let records = backend.instances("orders").await.expect("ok");
        assert_eq!(records[0].health, HealthStatus::Unhealthy);
    }
}
