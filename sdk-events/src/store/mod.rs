//! The bus's tables, on SQLite (a file: the embedded default) or PostgreSQL (several
//! `sdk-events` processes sharing one database), through one set of statements: sqlx's
//! `Any` driver, `$n` parameters (both databases read them), integers for times
//! (milliseconds since the Unix epoch) and text for JSON. Where the two differ (the key
//! column's type, `FOR UPDATE SKIP LOCKED`, how a write transaction begins) the
//! [`Backend`] says so.
//!
//! - `applications`: name, address, the SHA-256 of its publishing token, its secret.
//! - `actions`: name, owning application, JSON Schema.
//! - `subscriptions`: name, application, action, handler URL, current and previous secret
//!   (while one is rotated), enabled.
//! - `events`: a sequence number, the id (`msg_...`), action, application, payload, an
//!   optional idempotency key (unique per application).
//! - `deliveries`: one per event and matching subscription, written in the same
//!   transaction as the event (the outbox): status, attempts, when it is due, who holds it
//!   and until when (a lease, so a killed dispatcher's work is taken again).

mod deliveries;
mod events;
mod registry;
mod writer;

use std::time::Duration;

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, Executor as _,
};

pub use self::{
    deliveries::{Claimed, DeliveryRow, DeliveryStatus, Redrive, Settlement},
    events::{EventRow, NewEvent, Published},
    registry::{ActionRow, ApplicationRow, SubscriptionRow},
};

/// Which database is underneath.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file, one dispatcher.
    Sqlite,
    /// PostgreSQL: dispatchers in several processes claim with `SKIP LOCKED`.
    Postgres,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The name is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// Nothing by that name.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The URL names no database this build supports.
    #[error("{0}")]
    Config(String),
    /// The database failed (the change, if any, was not made).
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// The bus's store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's group-committing writer of everything (none on PostgreSQL, which writes
    /// concurrently).
    writer: Option<tokio::sync::mpsc::Sender<writer::Job>>,
    /// PostgreSQL's group-committing writer of settlements: a dispatcher's attempts end
    /// many at a time, and one transaction records those that ended together.
    settler: Option<tokio::sync::mpsc::Sender<writer::Job>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Chunk sizes of the writer's multi-row statements: powers of two up to its largest batch,
/// so that a handful of distinct statements is prepared (and cached), whatever a batch's
/// size.
const CHUNKS: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// One statement per chunk size: `head`, then `rows` tuples of `width` parameters each
/// (`$1`.. numbered on, every one passed through `cast`, e.g. `CAST({} AS BIGINT)`, by
/// position), then `tail`.
fn multi_row(head: &str, casts: &[&str], tail: &str) -> Vec<(usize, String)> {
    CHUNKS
        .iter()
        .map(|&rows| {
            let tuples: Vec<String> = (0..rows)
                .map(|row| {
                    let cells: Vec<String> = casts
                        .iter()
                        .enumerate()
                        .map(|(i, cast)| {
                            cast.replace("{}", &format!("${}", row * casts.len() + i + 1))
                        })
                        .collect();
                    format!("({})", cells.join(", "))
                })
                .collect();
            (rows, format!("{head}{}{tail}", tuples.join(", ")))
        })
        .collect()
}

/// The largest chunk of `statements` (from [`multi_row`]) that fits in `left` rows.
fn chunk(statements: &[(usize, String)], left: usize) -> Option<(usize, &str)> {
    statements
        .iter()
        .find(|(rows, _)| *rows <= left)
        .map(|(rows, statement)| (*rows, statement.as_str()))
}

fn writer_gone() -> StoreError {
    StoreError::Config("the store's writer has stopped".into())
}

/// A transaction that writes: on SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so it never fails half-way on a lock another connection (or process) took
/// first.
async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

impl Store {
    /// Opens (creating what is missing) `sqlite:<path>` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "`{}` is neither sqlite:<path> nor postgres://...",
                sdk_base::redact_url(url)
            )));
        };
        let mut url = url.to_owned();
        if backend == Backend::Sqlite && !url.contains('?') {
            url.push_str("?mode=rwc");
        }
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Config(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            // Writes go through the one writer (a connection); the others read, which on
            // SQLite's WAL never waits for a commit being synced.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        connection.execute(sdk_server::sqlite::DURABLE).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let writer = (backend == Backend::Sqlite).then(|| writer::spawn(pool.clone(), backend));
        let settler = (backend == Backend::Postgres).then(|| writer::spawn(pool.clone(), backend));
        let store = Store {
            pool,
            backend,
            writer,
            settler,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The database underneath.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let key = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        let schema = SCHEMA.replace("{key}", key);
        let mut transaction = self.begin_write().await?;
        for statement in schema.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            transaction
                .execute(sqlx::AssertSqlSafe(statement.to_owned()))
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// A transaction that writes (see [`begin_write`]).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(begin_write(&self.pool, self.backend).await?)
    }

    /// Hands a write to the writer (SQLite; settlements on PostgreSQL), or makes it now.
    async fn submit(&self, job: writer::Job) -> Result<(), StoreError> {
        let queue = match job {
            writer::Job::Settle(..) => self.writer.as_ref().or(self.settler.as_ref()),
            _ => self.writer.as_ref(),
        };
        match queue {
            Some(writer) => writer.send(job).await.map_err(|_| writer_gone()),
            None => {
                writer::run_alone(&self.pool, self.backend, job).await;
                Ok(())
            }
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS applications (
    name TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    name TEXT PRIMARY KEY,
    application TEXT NOT NULL REFERENCES applications (name),
    schema TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY,
    application TEXT NOT NULL REFERENCES applications (name),
    action TEXT NOT NULL REFERENCES actions (name),
    handler TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_until_ms BIGINT,
    enabled BIGINT NOT NULL,
    disabled_reason TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_action ON subscriptions (action);
CREATE TABLE IF NOT EXISTS events (
    seq {key},
    id TEXT NOT NULL UNIQUE,
    action TEXT NOT NULL,
    application TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    created_ms BIGINT NOT NULL,
    UNIQUE (application, idempotency_key)
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (created_ms, seq);
CREATE INDEX IF NOT EXISTS events_by_action ON events (action, created_ms, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    seq {key},
    event_seq BIGINT NOT NULL REFERENCES events (seq),
    subscription TEXT NOT NULL REFERENCES subscriptions (name),
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    due_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT NOT NULL,
    replay BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due_ms, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_by_subscription ON deliveries (subscription, seq);
CREATE INDEX IF NOT EXISTS deliveries_by_subscription_status ON deliveries (subscription, status, seq);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, seq);
CREATE INDEX IF NOT EXISTS deliveries_by_replay ON deliveries (replay, seq) WHERE replay <> 0
";
