//! The group-committing writer: whatever arrives while a commit is being synced goes into
//! the next transaction together, so a commit's fsync is shared by up to `MAX_BATCH` writes
//! instead of paid by each (group commit), and the batch is written by a few multi-row
//! statements (its publishes together, its settlements together) rather than one or two
//! per write. Each write is answered only after the transaction holding it committed.
//! Should a batch fail, its writes are tried again one transaction each, so one bad write
//! never fails the others.
//!
//! - On SQLite it takes every write: publishes, claims and settlements.
//! - On PostgreSQL it takes settlements only: a dispatcher's attempts end many at a time.
//!   PostgreSQL shares one WAL flush among concurrent commits itself, and a single writer
//!   would only queue a publish behind others: a publish is one statement there
//!   (`events::publish_postgres`), and a claim runs in a transaction of its own, at once
//!   ([`run_alone`]).
//!
//! The queue and how a batch is taken are the servers' one group-committing writer
//! (`sdk_server::group_commit`, which the registry's writer runs on too); what a batch does
//! is this module's.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{
    begin_write,
    deliveries::{claim_in, settle_batch_in, ClaimJob, SettleJob},
    events::{publish_batch_in, publish_postgres},
    Backend, Claimed, NewEvent, Published, StoreError,
};

/// Writes in one transaction at most.
const MAX_BATCH: usize = 256;

/// A write and where its answer goes.
pub(super) enum Job {
    Publish(NewEvent, oneshot::Sender<Result<Published, StoreError>>),
    Settle(SettleJob, oneshot::Sender<Result<(), StoreError>>),
    Claim(ClaimJob, oneshot::Sender<Result<Vec<Claimed>, StoreError>>),
}

enum Outcome {
    Published(Published),
    Settled,
    Claimed(Vec<Claimed>),
}

/// Starts the writer (the servers' one group-committing writer, `sdk_server::group_commit`);
/// it stops when every sender is gone.
pub(super) fn spawn(pool: AnyPool, backend: Backend) -> mpsc::Sender<Job> {
    sdk_server::group_commit::spawn(Writer { pool, backend }, MAX_BATCH)
}

/// What the writer writes to.
struct Writer {
    pool: AnyPool,
    backend: Backend,
}

impl sdk_server::group_commit::Commit for Writer {
    type Job = Job;

    /// The batch in one transaction; should it fail, each write in one of its own, so one
    /// bad write never fails the others.
    async fn commit(&mut self, mut batch: Vec<Job>) {
        let (pool, backend) = (&self.pool, self.backend);
        match commit(pool, backend, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    answer(job, Ok(outcome));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    answer(job, Err(e.into()));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, writes = batch.len(), "batch failed; writing one by one");
                for job in batch {
                    let alone = commit(pool, backend, std::slice::from_ref(&job)).await;
                    let outcome = alone.map_err(StoreError::from).and_then(|mut outcomes| {
                        outcomes
                            .pop()
                            .ok_or_else(|| StoreError::Config("no outcome".into()))
                    });
                    answer(job, outcome);
                }
            }
        }
    }
}

/// Runs `job` at once and answers it (PostgreSQL): a publish as its one statement, any
/// other write in a transaction of its own.
pub(super) async fn run_alone(pool: &AnyPool, backend: Backend, job: Job) {
    if let Job::Publish(event, reply) = job {
        let published = async {
            let mut connection = pool.acquire().await?;
            publish_postgres(&mut connection, &event).await
        };
        let _ = reply.send(published.await.map_err(StoreError::from));
        return;
    }
    let outcome = commit(pool, backend, std::slice::from_ref(&job))
        .await
        .map_err(StoreError::from)
        .and_then(|mut outcomes| {
            outcomes
                .pop()
                .ok_or_else(|| StoreError::Config("no outcome".into()))
        });
    answer(job, outcome);
}

async fn commit(
    pool: &AnyPool,
    backend: Backend,
    jobs: &[Job],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut transaction = begin_write(pool, backend).await?;
    let (mut events, mut settles) = (Vec::new(), Vec::new());
    for job in jobs {
        match job {
            Job::Publish(event, _) => events.push(event),
            Job::Settle(settle, _) => settles.push(settle),
            Job::Claim(..) => {}
        }
    }
    // The batch's publishes together, its settlements together, then its claims (which see
    // both).
    let mut published = if events.is_empty() {
        Vec::new().into_iter()
    } else {
        publish_batch_in(&mut transaction, &events)
            .await?
            .into_iter()
    };
    if !settles.is_empty() {
        settle_batch_in(&mut transaction, &settles).await?;
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(match job {
            Job::Publish(..) => Outcome::Published(published.next().ok_or_else(|| {
                sqlx::Error::Protocol("a publish of the batch went unanswered".into())
            })?),
            Job::Settle(..) => Outcome::Settled,
            Job::Claim(claim, _) => {
                Outcome::Claimed(claim_in(&mut transaction, backend, claim).await?)
            }
        });
    }
    transaction.commit().await?;
    Ok(outcomes)
}

/// Answers `job` (a caller that went away is not waited for).
fn answer(job: Job, outcome: Result<Outcome, StoreError>) {
    let mismatch = || StoreError::Config("the writer answered another kind of write".into());
    match job {
        Job::Publish(_, reply) => {
            let _ = reply.send(outcome.and_then(|o| match o {
                Outcome::Published(published) => Ok(published),
                _ => Err(mismatch()),
            }));
        }
        Job::Settle(_, reply) => {
            let _ = reply.send(outcome.and_then(|o| match o {
                Outcome::Settled => Ok(()),
                _ => Err(mismatch()),
            }));
        }
        Job::Claim(_, reply) => {
            let _ = reply.send(outcome.and_then(|o| match o {
                Outcome::Claimed(claimed) => Ok(claimed),
                _ => Err(mismatch()),
            }));
        }
    }
}
