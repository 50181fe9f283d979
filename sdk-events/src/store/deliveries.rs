//! Deliveries: claimed under a lease, settled by the dispatcher, listed and re-driven by
//! the API.

use sqlx::Row as _;

use super::{writer::Job, Backend, Store, StoreError};

/// The claim, up to the end of its subquery (each backend closes it its own way).
macro_rules! claim_sql {
    () => {
        "UPDATE deliveries SET lease_owner = $1, lease_until_ms = $2 WHERE seq IN (\
         SELECT d.seq FROM deliveries d JOIN subscriptions s ON s.name = d.subscription \
         WHERE d.status = 'pending' AND d.due_ms <= $3 AND d.lease_until_ms <= $3 AND s.enabled = 1 \
         AND (d.replay = 0 OR NOT EXISTS (SELECT 1 FROM deliveries p \
         WHERE p.replay = d.replay AND p.status = 'pending' AND p.seq < d.seq)) \
         ORDER BY d.due_ms, d.seq LIMIT $4"
    };
}

/// The columns of a [`DeliveryRow`] (a macro, so statements stay `&'static str`).
macro_rules! delivery_select {
    () => {
        "SELECT d.seq, e.id AS event_id, d.subscription, d.status, d.attempts, d.due_ms, d.last_status, \
         d.last_error, d.replay, d.updated_ms FROM deliveries d JOIN events e ON e.seq = d.event_seq"
    };
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The handler answered 2xx.
    Delivered,
    /// Given up on (the last attempt failed, or the handler refused it): listed, and can
    /// be re-driven.
    Dead,
}

impl DeliveryStatus {
    /// As stored and shown: `pending`, `delivered`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        match text {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "dead" => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }
}

/// A delivery a dispatcher holds, with what it needs to make the attempt.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The delivery's sequence number.
    pub seq: i64,
    /// Attempts made so far.
    pub attempts: i64,
    /// The event's id: the `webhook-id`.
    pub event_id: String,
    /// The event's action.
    pub action: String,
    /// The event's payload, JSON text.
    pub payload: String,
    /// When the event was published, ms since the epoch.
    pub event_ms: i64,
    /// The subscription.
    pub subscription: String,
    /// Where to deliver.
    pub handler: String,
    /// The signing secret.
    pub secret: String,
    /// The secret being rotated out, and until when (ms) it still signs.
    pub previous_secret: Option<(String, i64)>,
}

/// How an attempt ended, as the dispatcher decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Delivered (the handler's status).
    Delivered {
        /// The handler's status.
        status: u16,
    },
    /// Failed; try again at `due_ms`. `counted` is false when no attempt reached the
    /// handler (its breaker was open), so the schedule does not advance.
    Retry {
        /// When to try again.
        due_ms: i64,
        /// The handler's status, if it answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// Whether this was an attempt.
        counted: bool,
    },
    /// Given up on.
    Dead {
        /// The handler's status, if it answered.
        status: Option<u16>,
        /// Why.
        error: String,
    },
    /// The handler answered `410 Gone`: the delivery is dead and its subscription turned
    /// off, in one transaction.
    Gone,
}

/// A delivery as the API lists it.
#[derive(Clone, Debug)]
pub struct DeliveryRow {
    /// Its sequence number (the listing's cursor).
    pub seq: i64,
    /// The event's id.
    pub event_id: String,
    /// The subscription.
    pub subscription: String,
    /// Where it stands.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending ones), ms since the epoch.
    pub due_ms: i64,
    /// The handler's last status.
    pub last_status: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Whether it belongs to a replay.
    pub replay: bool,
    /// When it last changed, ms since the epoch.
    pub updated_ms: i64,
}

impl Store {
    /// Leases up to `limit` due deliveries to `owner` until `lease_until_ms`: pending ones
    /// whose time has come, of enabled subscriptions, not leased by anyone else (or whose
    /// lease ran out: their dispatcher died), a replay's only once the one before it is
    /// settled. On PostgreSQL rows other dispatchers are claiming are skipped, not waited
    /// for.
    pub async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let job = ClaimJob {
            owner: owner.to_owned(),
            now_ms,
            lease_until_ms,
            limit,
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Claim(job, reply)).await?;
        answer.await.map_err(|_| super::writer_gone())?
    }

    /// Records how `owner`'s attempt at delivery `seq` ended (nothing, if its lease was
    /// taken over meanwhile). Settlements arriving together share a commit.
    pub async fn settle(
        &self,
        seq: i64,
        owner: &str,
        attempts_before: i64,
        settlement: &Settlement,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let job = SettleJob {
            seq,
            owner: owner.to_owned(),
            attempts_before,
            settlement: settlement.clone(),
            now_ms,
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Settle(job, reply)).await?;
        answer.await.map_err(|_| super::writer_gone())?
    }

    /// Gives back the leases `owner_prefix` holds (a dispatcher shutting down), so
    /// another dispatcher takes them at once.
    pub async fn release(&self, owner_prefix: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until_ms = 0 \
             WHERE status = 'pending' AND lease_owner LIKE $1",
        )
        .bind(format!("{owner_prefix}%"))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deliveries with `status` (any, if none) of `subscription` (any, if none), after
    /// the sequence number `after`, oldest first, at most `limit`.
    pub async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        subscription: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        // One statement per filter, each served by an index of its own (never a scan
        // through unrelated deliveries); parameters bound in this order: subscription,
        // status, after, limit.
        let statement = match (subscription.is_some(), status.is_some()) {
            (false, false) => concat!(delivery_select!(), " WHERE d.seq > $1 ORDER BY d.seq LIMIT $2"),
            (false, true) => concat!(delivery_select!(), " WHERE d.status = $1 AND d.seq > $2 ORDER BY d.seq LIMIT $3"),
            (true, false) => concat!(delivery_select!(), " WHERE d.subscription = $1 AND d.seq > $2 ORDER BY d.seq LIMIT $3"),
            (true, true) => concat!(
                delivery_select!(),
                " WHERE d.subscription = $1 AND d.status = $2 AND d.seq > $3 ORDER BY d.seq LIMIT $4"
            ),
        };
        let mut query = sqlx::query(statement);
        if let Some(subscription) = subscription {
            query = query.bind(subscription);
        }
        if let Some(status) = status {
            query = query.bind(status.as_str());
        }
        let rows = query.bind(after).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(delivery_row).collect()
    }

    /// Makes dead deliveries pending again, due now, with their attempts reset: the one
    /// numbered `seq`, or every dead one of `subscription`. Returns how many.
    pub async fn redrive(&self, target: Redrive<'_>, now_ms: i64) -> Result<u64, StoreError> {
        let query = match target {
            Redrive::One(seq) => sqlx::query(concat!(
                "UPDATE deliveries SET status = 'pending', attempts = 0, due_ms = $1, updated_ms = $1 ",
                "WHERE seq = $2 AND status = 'dead'"
            ))
            .bind(now_ms)
            .bind(seq),
            Redrive::Subscription(name) => sqlx::query(concat!(
                "UPDATE deliveries SET status = 'pending', attempts = 0, due_ms = $1, updated_ms = $1 ",
                "WHERE subscription = $2 AND status = 'dead'"
            ))
            .bind(now_ms)
            .bind(name),
        };
        Ok(query.execute(&self.pool).await?.rows_affected())
    }
}

/// Which dead deliveries to re-drive.
#[derive(Clone, Copy, Debug)]
pub enum Redrive<'a> {
    /// The one with this sequence number.
    One(i64),
    /// Every dead one of this subscription.
    Subscription(&'a str),
}

fn claimed_row(r: &sqlx::any::AnyRow) -> Result<Claimed, sqlx::Error> {
    let previous: Option<String> = r.try_get("previous_secret")?;
    let until: Option<i64> = r.try_get("previous_until_ms")?;
    Ok(Claimed {
        seq: r.try_get("seq")?,
        attempts: r.try_get("attempts")?,
        event_id: r.try_get("event_id")?,
        action: r.try_get("action")?,
        payload: r.try_get("payload")?,
        event_ms: r.try_get("event_ms")?,
        subscription: r.try_get("subscription")?,
        handler: r.try_get("handler")?,
        secret: r.try_get("secret")?,
        previous_secret: previous.zip(until),
    })
}

fn delivery_row(r: &sqlx::any::AnyRow) -> Result<DeliveryRow, StoreError> {
    let replay: i64 = r.try_get("replay")?;
    Ok(DeliveryRow {
        seq: r.try_get("seq")?,
        event_id: r.try_get("event_id")?,
        subscription: r.try_get("subscription")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        due_ms: r.try_get("due_ms")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        replay: replay != 0,
        updated_ms: r.try_get("updated_ms")?,
    })
}

/// A settlement for the writer.
#[derive(Clone, Debug)]
pub(super) struct SettleJob {
    pub(super) seq: i64,
    pub(super) owner: String,
    pub(super) attempts_before: i64,
    pub(super) settlement: Settlement,
    pub(super) now_ms: i64,
}

/// What `job` sets: status, attempts, due time, the handler's status, the error.
fn settled(job: &SettleJob) -> (&'static str, i64, i64, Option<u16>, Option<&str>) {
    let (now_ms, attempts_before) = (job.now_ms, job.attempts_before);
    let attempts = attempts_before + 1;
    match &job.settlement {
        Settlement::Delivered { status } => ("delivered", attempts, now_ms, Some(*status), None),
        Settlement::Retry {
            due_ms,
            status,
            error,
            counted,
        } => {
            let attempts = if *counted { attempts } else { attempts_before };
            ("pending", attempts, *due_ms, *status, Some(error.as_str()))
        }
        Settlement::Dead { status, error } => {
            ("dead", attempts, now_ms, *status, Some(error.as_str()))
        }
        Settlement::Gone => (
            "dead",
            attempts,
            now_ms,
            Some(410),
            Some("410 Gone: the subscription was disabled"),
        ),
    }
}

/// `UPDATE deliveries` from a list of settlements, of each chunk size (the casts type the
/// list's columns on PostgreSQL; SQLite takes them as they are).
static SETTLE: std::sync::LazyLock<Vec<(usize, String)>> = std::sync::LazyLock::new(|| {
    let (big, text) = ("CAST({} AS BIGINT)", "CAST({} AS TEXT)");
    super::multi_row(
        "WITH v (seq, owner, status, attempts, due_ms, last_status, last_error, updated_ms) AS (VALUES ",
        &[big, text, text, big, big, big, text, big],
        ") UPDATE deliveries SET status = v.status, attempts = v.attempts, due_ms = v.due_ms, \
         lease_owner = NULL, lease_until_ms = 0, last_status = v.last_status, \
         last_error = v.last_error, updated_ms = v.updated_ms \
         FROM v WHERE deliveries.seq = v.seq AND deliveries.lease_owner = v.owner",
    )
});

/// [`Store::settle`]'s writes of the writer's batch, inside its transaction: a few
/// multi-row statements rather than one per settlement; a `410 Gone` (which also turns its
/// subscription off) on its own.
pub(super) async fn settle_batch_in(
    connection: &mut sqlx::AnyConnection,
    jobs: &[&SettleJob],
) -> Result<(), sqlx::Error> {
    let (gone, mut rest): (Vec<&SettleJob>, Vec<&SettleJob>) = jobs
        .iter()
        .partition(|job| job.settlement == Settlement::Gone);
    for job in gone {
        settle_in(connection, job).await?;
    }
    while let Some((rows, statement)) = super::chunk(&SETTLE, rest.len()) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for job in rest.drain(..rows) {
            let (status, attempts, due_ms, last_status, error) = settled(job);
            query = query
                .bind(job.seq)
                .bind(&job.owner)
                .bind(status)
                .bind(attempts)
                .bind(due_ms)
                .bind(last_status.map(i64::from))
                .bind(error)
                .bind(job.now_ms);
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

/// One settlement by itself: a `410 Gone` sets the delivery dead and, if it was still this
/// dispatcher's to settle, turns its subscription off.
async fn settle_in(
    connection: &mut sqlx::AnyConnection,
    job: &SettleJob,
) -> Result<(), sqlx::Error> {
    let seq = job.seq;
    let (status, attempts, due_ms, last_status, error) = settled(job);
    let done = sqlx::query(
        "UPDATE deliveries SET status = $1, attempts = $2, due_ms = $3, lease_owner = NULL, lease_until_ms = 0, \
         last_status = $4, last_error = $5, updated_ms = $6 WHERE seq = $7 AND lease_owner = $8",
    )
    .bind(status)
    .bind(attempts)
    .bind(due_ms)
    .bind(last_status.map(i64::from))
    .bind(error)
    .bind(job.now_ms)
    .bind(seq)
    .bind(&job.owner)
    .execute(&mut *connection)
    .await?;
    if done.rows_affected() == 1 && job.settlement == Settlement::Gone {
        sqlx::query(
            "UPDATE subscriptions SET enabled = 0, disabled_reason = $1 \
             WHERE name = (SELECT subscription FROM deliveries WHERE seq = $2)",
        )
        .bind("the handler answered 410 Gone")
        .bind(seq)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// A claim for the writer.
#[derive(Clone, Debug)]
pub(super) struct ClaimJob {
    pub(super) owner: String,
    pub(super) now_ms: i64,
    pub(super) lease_until_ms: i64,
    pub(super) limit: i64,
}

/// [`Store::claim`]'s writes and read, inside the writer's transaction.
pub(super) async fn claim_in(
    connection: &mut sqlx::AnyConnection,
    backend: Backend,
    job: &ClaimJob,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let statement = match backend {
        Backend::Postgres => concat!(claim_sql!(), " FOR UPDATE OF d SKIP LOCKED)"),
        Backend::Sqlite => concat!(claim_sql!(), ")"),
    };
    sqlx::query(statement)
        .bind(&job.owner)
        .bind(job.lease_until_ms)
        .bind(job.now_ms)
        .bind(job.limit)
        .execute(&mut *connection)
        .await?;
    let rows = sqlx::query(
        "SELECT d.seq, d.attempts, e.id AS event_id, e.action, e.payload, e.created_ms AS event_ms, \
         s.name AS subscription, s.handler, s.secret, s.previous_secret, s.previous_until_ms \
         FROM deliveries d JOIN events e ON e.seq = d.event_seq JOIN subscriptions s ON s.name = d.subscription \
         WHERE d.lease_owner = $1 AND d.lease_until_ms = $2 AND d.status = 'pending' ORDER BY d.seq",
    )
    .bind(&job.owner)
    .bind(job.lease_until_ms)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter().map(claimed_row).collect()
}
