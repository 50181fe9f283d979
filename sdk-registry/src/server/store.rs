//! Durable state: SQLite (through sqlx), opened as every durable store opens
//! ([`sdk_server::sqlite`]: WAL, `synchronous=FULL`), kept as a log
//! of changes. Every change is a row appended at the end of the table (a removal is a row
//! without an instance), so a commit touches the same few pages whatever the registry's
//! size; a table keyed by instance would scatter a batch's rows over as many pages as it
//! has rows once the registry is large, and its cost would grow with it. The log is
//! compacted (superseded rows and removals deleted) each time it doubles, so its length stays
//! within twice what it describes plus [`COMPACT_MIN`] rows, and compaction's cost per write
//! stays constant.
//!
//! A commit that fails (disk full, I/O error) leaves the file as it was: SQLite rolls the
//! transaction back and the caller answers 500 without touching memory.
//!
//! The file is locked for the server's lifetime (`<data>.lock`, an OS file lock), so a
//! second server on the same data refuses to start instead of overwriting the first one's
//! writes. A JSON snapshot from an older release at the same path is imported once: the
//! import is built beside it and renamed over it, and the JSON is kept as
//! `<data>.json-backup`.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read as _, Write as _},
    path::{Path, PathBuf},
};

use sqlx::{sqlite::SqliteConnectOptions, Connection as _, Row as _, SqliteConnection};

use crate::{HealthStatus, ServiceInstance};

/// One change to the stored instances.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Insert or replace an instance with its health.
    Put(ServiceInstance, HealthStatus),
    /// Remove an instance.
    Delete { service: String, id: String },
}

/// What the data file held at start.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) instances: Vec<(ServiceInstance, HealthStatus)>,
    /// Rows in the log.
    pub(crate) rows: u64,
    /// Counts the server's starts on this file: watch versions carry it, so they never go
    /// backwards across a restart. `None` when this start could not be counted (the disk
    /// is full): the server then serves what is stored under an epoch no counted start
    /// can reach.
    pub(crate) epoch: Option<u64>,
}

/// The open data file: a SQLite connection (owned by the one writer task) and the lock.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    connection: Option<SqliteConnection>,
    /// Rows in the log now, and after the last compaction.
    rows: u64,
    compacted: u64,
    _lock: File,
}

/// The log is not compacted below this many rows.
const COMPACT_MIN: u64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    id TEXT NOT NULL,
    instance TEXT,
    health TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

impl Store {
    /// Locks and opens (or creates) the data file at `path`, importing an old JSON snapshot
    /// found there, and counts this start in its epoch.
    pub(crate) async fn open(path: &Path) -> io::Result<(Store, Loaded)> {
        let lock = lock(path)?;
        if is_json_snapshot(path)? {
            import_json(path).await?;
        }
        let mut connection = connect(path).await?;
        let mut loaded = load(&mut connection)
            .await
            .map_err(|e| io_error(path, &e))?;
        // Counting this start is a write: on a full disk the server still starts, serves
        // what is stored, and refuses writes until there is room again.
        match count_start(&mut connection).await {
            Ok(epoch) => loaded.epoch = Some(epoch),
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut connection).await;
                let e = save_error(path, &e);
                tracing::error!(error = %e, "could not count this start; serving what is stored, writes refused until it can");
            }
        }
        // The file, its WAL and its shared-memory index exist now: make their names durable
        // too, so a power cut right after the first commit cannot lose the files themselves.
        sync_dir(path)?;
        let mut store = Store {
            path: path.to_owned(),
            connection: Some(connection),
            rows: loaded.rows,
            compacted: loaded.instances.len() as u64,
            _lock: lock,
        };
        store.compact_if_due().await;
        Ok((store, loaded))
    }

    /// Merges the write-ahead log into the data file and closes it: a clean stop leaves
    /// one file, not a WAL to replay.
    pub(crate) async fn checkpoint(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        if let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut connection)
            .await
        {
            tracing::warn!(error = %e, "could not merge the write-ahead log at shutdown");
        }
        let _ = connection.close().await;
    }

    /// Commits `changes` in one transaction; on error nothing of them is in the file.
    pub(crate) async fn commit(&mut self, changes: &[Change]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let connection = match &mut self.connection {
            Some(connection) => connection,
            // A failed commit closed the connection; a disk that was full or read-only may
            // be writable again.
            None => self.connection.insert(connect(&self.path).await?),
        };
        let result = write(connection, changes).await;
        if let Err(e) = &result {
            // SQLite may or may not have rolled back already (it does on SQLITE_FULL);
            // either way nothing of this transaction may stay.
            let rolled_back = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
            if rolled_back.is_err() {
                if let Some(connection) = self.connection.take() {
                    let _ = connection.close().await;
                }
            }
            return Err(save_error(&self.path, e));
        }
        self.rows += changes.len() as u64;
        self.compact_if_due().await;
        Ok(())
    }

    /// Compacts the log once it has doubled since the last compaction. A failure is only
    /// logged: the log stays correct, just longer, and the next commit tries again.
    async fn compact_if_due(&mut self) {
        if self.rows < COMPACT_MIN.max(self.compacted.saturating_mul(2)) {
            return;
        }
        let Some(connection) = &mut self.connection else {
            return;
        };
        match compact(connection).await {
            Ok(rows) => {
                tracing::debug!(before = self.rows, after = rows, "compacted the data file");
                self.rows = rows;
                self.compacted = rows;
            }
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
                tracing::warn!(error = %e, "could not compact the data file; will try again");
            }
        }
    }
}

/// Keeps only each instance's last row, and drops removals; returns the rows left.
async fn compact(connection: &mut SqliteConnection) -> sqlx::Result<u64> {
    sqlx::raw_sql(
        "BEGIN IMMEDIATE;
         DELETE FROM log WHERE seq NOT IN (SELECT MAX(seq) FROM log GROUP BY service, id);
         DELETE FROM log WHERE instance IS NULL;
         COMMIT;",
    )
    .execute(&mut *connection)
    .await?;
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM log")
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

async fn write(connection: &mut SqliteConnection, changes: &[Change]) -> sqlx::Result<()> {
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *connection)
        .await?;
    for change in changes {
        match change {
            Change::Put(instance, health) => {
                let json = serde_json::to_string(instance)
                    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                sqlx::query("INSERT INTO log (service, id, instance, health) VALUES (?, ?, ?, ?)")
                    .bind(&instance.service)
                    .bind(&instance.id)
                    .bind(json)
                    .bind(health_name(*health))
                    .execute(&mut *connection)
                    .await?;
            }
            Change::Delete { service, id } => {
                sqlx::query(
                    "INSERT INTO log (service, id, instance, health) VALUES (?, ?, NULL, '')",
                )
                .bind(service)
                .bind(id)
                .execute(&mut *connection)
                .await?;
            }
        }
    }
    sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
    Ok(())
}

fn health_name(health: HealthStatus) -> &'static str {
    match health {
        HealthStatus::Unknown => "unknown",
        HealthStatus::Healthy => "healthy",
        HealthStatus::Unhealthy => "unhealthy",
    }
}

async fn connect(path: &Path) -> io::Result<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| io_error(path, &e))?;
    sqlx::raw_sql(sdk_server::sqlite::DURABLE)
        .execute(&mut connection)
        .await
        .map_err(|e| io_error(path, &e))?;
    sqlx::raw_sql(SCHEMA)
        .execute(&mut connection)
        .await
        .map_err(|e| io_error(path, &e))?;
    Ok(connection)
}

/// Counts this start in the file; the new epoch.
async fn count_start(connection: &mut SqliteConnection) -> sqlx::Result<u64> {
    sqlx::raw_sql(
        "INSERT INTO meta (key, value) VALUES ('epoch', 1) \
         ON CONFLICT (key) DO UPDATE SET value = value + 1",
    )
    .execute(&mut *connection)
    .await?;
    let epoch: i64 = sqlx::query("SELECT value FROM meta WHERE key = 'epoch'")
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    Ok(u64::try_from(epoch).unwrap_or(1))
}

/// Reads what the file holds, writing nothing.
async fn load(connection: &mut SqliteConnection) -> sqlx::Result<Loaded> {
    let rows = sqlx::query("SELECT service, id, instance, health FROM log ORDER BY seq")
        .fetch_all(&mut *connection)
        .await?;
    let count = rows.len() as u64;
    // Replayed in order: each instance's last row wins, and a removal clears it.
    let mut state = std::collections::BTreeMap::new();
    for row in rows {
        let key: (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let json: Option<String> = row.try_get(2)?;
        let Some(json) = json else {
            state.remove(&key);
            continue;
        };
        let health: String = row.try_get(3)?;
        let instance: ServiceInstance =
            serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let health = serde_json::from_value(serde_json::Value::String(health))
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        state.insert(key, (instance, health));
    }
    Ok(Loaded {
        instances: state.into_values().collect(),
        rows: count,
        epoch: None,
    })
}

fn io_error(path: &Path, e: &dyn std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

/// A failed save as an I/O error naming the file: one that says the disk is full (SQLite's
/// `SQLITE_FULL`, or `ENOSPC` underneath) is of kind `StorageFull`, which the API answers
/// with 507 and `/health` reports.
fn save_error(path: &Path, e: &sqlx::Error) -> io::Error {
    const SQLITE_FULL: &str = "13";
    const ENOSPC: i32 = 28;
    let full = match e {
        sqlx::Error::Database(db) => db.code().as_deref() == Some(SQLITE_FULL),
        sqlx::Error::Io(io) => io.raw_os_error() == Some(ENOSPC),
        _ => false,
    };
    match full {
        true => io::Error::new(
            io::ErrorKind::StorageFull,
            format!("{}: {e}", path.display()),
        ),
        false => io_error(path, e),
    }
}

/// `<data>` plus a suffix (`registry.db` → `registry.db.lock`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the data file's lock, or says which process holds it.
fn lock(path: &Path) -> io::Result<File> {
    let lock_path = beside(path, ".lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, &e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process".to_owned()
            } else {
                holder.to_owned()
            };
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by {holder}: two servers must not share one data file",
                    path.display()
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&lock_path, &e)),
    }
    file.set_len(0)?;
    writeln!(file, "sdk-registry (pid {})", std::process::id())?;
    Ok(file)
}

/// True if `path` holds an older release's JSON snapshot (a JSON array).
fn is_json_snapshot(path: &Path) -> io::Result<bool> {
    let mut first = [0u8; 64];
    let read = match File::open(path) {
        Ok(mut file) => file.read(&mut first)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(path, &e)),
    };
    Ok(first[..read]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'['))
}

/// Replaces the JSON snapshot at `path` with a SQLite file holding the same instances, so
/// that a crash at any point leaves one or the other whole.
async fn import_json(path: &Path) -> io::Result<()> {
    let bytes = std::fs::read(path)?;
    let instances: Vec<ServiceInstance> =
        serde_json::from_slice(&bytes).map_err(|e| io_error(path, &e))?;
    let staging = beside(path, ".import");
    remove_if_present(&staging)?;
    let mut connection = connect(&staging).await?;
    let changes: Vec<Change> = instances
        .into_iter()
        .filter(|instance| instance.validate().is_ok())
        .map(|instance| Change::Put(instance, HealthStatus::Unknown))
        .collect();
    write(&mut connection, &changes)
        .await
        .map_err(|e| io_error(&staging, &e))?;
    // Closing the last connection checkpoints the WAL into the file and removes it.
    sqlx::raw_sql("PRAGMA journal_mode = DELETE")
        .execute(&mut connection)
        .await
        .map_err(|e| io_error(&staging, &e))?;
    connection
        .close()
        .await
        .map_err(|e| io_error(&staging, &e))?;
    File::open(&staging)?.sync_all()?;
    let backup = beside(path, ".json-backup");
    remove_if_present(&backup)?;
    std::fs::hard_link(path, &backup)?;
    std::fs::rename(&staging, path)?;
    sync_dir(path)?;
    tracing::info!(
        file = %path.display(),
        backup = %backup.display(),
        "imported an older JSON snapshot"
    );
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Syncs the directory holding `path`, so a rename in it is durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sdk-registry-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("registry.db")
    }

    #[tokio::test]
    async fn changes_survive_a_reopen_and_the_epoch_grows() {
        let path = temp("reopen");
        let (mut store, loaded) = Store::open(&path).await.expect("open");
        assert!(loaded.instances.is_empty());
        assert_eq!(loaded.epoch, Some(1));
        let a = ServiceInstance::new("orders", ("127.0.0.1", 1)).with_id("a");
        let b = ServiceInstance::new("orders", ("127.0.0.1", 2)).with_id("b");
        store
            .commit(&[
                Change::Put(a.clone(), HealthStatus::Unknown),
                Change::Put(b, HealthStatus::Unknown),
            ])
            .await
            .expect("commit");
        store
            .commit(&[
                Change::Delete {
                    service: "orders".into(),
                    id: "b".into(),
                },
                Change::Put(a.clone(), HealthStatus::Unhealthy),
            ])
            .await
            .expect("commit");
        drop(store);
        let (_store, loaded) = Store::open(&path).await.expect("reopen");
        assert_eq!(loaded.instances, [(a, HealthStatus::Unhealthy)]);
        assert_eq!(loaded.epoch, Some(2));
    }

    #[tokio::test]
    async fn the_log_is_compacted_as_it_grows_and_replays_the_same() {
        let path = temp("compact");
        let (mut store, _) = Store::open(&path).await.expect("open");
        // 30,000 rows describing 100 instances, 50 of them removed at the end.
        for round in 0..300u16 {
            let changes: Vec<Change> = (0..100u16)
                .map(|i| {
                    let instance = ServiceInstance::new("orders", ("10.0.0.1", round + 1))
                        .with_id(format!("i{i}"));
                    Change::Put(instance, HealthStatus::Unknown)
                })
                .collect();
            store.commit(&changes).await.expect("commit");
        }
        let removals: Vec<Change> = (0..50)
            .map(|i| Change::Delete {
                service: "orders".into(),
                id: format!("i{i}"),
            })
            .collect();
        store.commit(&removals).await.expect("commit");
        assert!(
            store.rows < 2 * COMPACT_MIN,
            "compacted: {} rows",
            store.rows
        );
        drop(store);
        let (_store, loaded) = Store::open(&path).await.expect("reopen");
        assert_eq!(loaded.instances.len(), 50);
        assert!(
            loaded.instances.iter().all(|(i, _)| i.port == 300),
            "the last rows won"
        );
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_file_is_refused() {
        let path = temp("lock");
        let (_first, _) = Store::open(&path).await.expect("open");
        let err = Store::open(&path).await.expect_err("locked");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_old_json_snapshot_is_imported_once() {
        let path = temp("import");
        let old = vec![ServiceInstance::new("orders", ("127.0.0.1", 1)).with_id("a")];
        std::fs::write(&path, serde_json::to_vec(&old).expect("json")).expect("write");
        let (store, loaded) = Store::open(&path).await.expect("open");
        assert_eq!(loaded.instances, [(old[0].clone(), HealthStatus::Unknown)]);
        drop(store);
        assert!(beside(&path, ".json-backup").exists());
        let (_store, loaded) = Store::open(&path).await.expect("reopen");
        assert_eq!(loaded.instances.len(), 1, "read from SQLite now");
    }
}
