//! How every durable SQLite store of the platform (the registry's log, the event bus's
//! tables) opens its database: the one set of pragmas, run on each new connection.

/// Run once on each new connection, before its first statement (a pool's `after_connect`,
/// or right after a lone connection opens), with `sqlx::raw_sql(DURABLE)`.
///
/// WAL, so readers never block the writer and never wait for a commit being synced;
/// `synchronous = FULL`, so a commit returns only after the WAL is synced and an acknowledged
/// write survives a power cut, not only a crash; foreign keys enforced. SQLite's own
/// checkpoints stay on: run by the writer after a commit while nothing else writes, they
/// keep the log at about 4 MB. (Run from another connection, they race the next commits,
/// the log is never wholly copied back, and it grows without end.)
pub const DURABLE: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON";
