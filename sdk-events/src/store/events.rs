//! Events: publishing (the event and its deliveries in one transaction), listing, replay.

use sqlx::Row as _;

/// The columns of an [`EventRow`] (a macro, so statements stay `&'static str`).
macro_rules! event_select {
    () => {
        "SELECT seq, id, action, application, payload, created_ms FROM events"
    };
}

use super::{writer::Job, Store, StoreError};

/// An event to store.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Its id (`msg_...`): the `webhook-id` of its deliveries.
    pub id: String,
    /// The action.
    pub action: String,
    /// The publishing application.
    pub application: String,
    /// The payload, JSON text.
    pub payload: String,
    /// The publisher's idempotency key: the same key twice stores one event.
    pub idempotency_key: Option<String>,
    /// When it was published, ms since the epoch.
    pub created_ms: i64,
}

/// What a publish stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The event's id (the earlier event's, for a repeated idempotency key).
    pub id: String,
    /// Its sequence number.
    pub seq: i64,
    /// When it was stored, ms since the epoch.
    pub created_ms: i64,
    /// Deliveries written with it (0 for a repeat).
    pub deliveries: u64,
    /// Whether the idempotency key had been seen: nothing new was stored.
    pub duplicate: bool,
}

/// A stored event.
#[derive(Clone, Debug)]
pub struct EventRow {
    /// Its sequence number (the listing's cursor).
    pub seq: i64,
    /// Its id.
    pub id: String,
    /// The action.
    pub action: String,
    /// The publishing application.
    pub application: String,
    /// The payload, JSON text.
    pub payload: String,
    /// When it was published, ms since the epoch.
    pub created_ms: i64,
}

impl Store {
    /// Stores `event` and one pending delivery for each enabled subscription to its
    /// action, in one transaction: both or neither. Answers only after the commit (on
    /// SQLite, synced to disk); publishes arriving meanwhile share the commit (see
    /// `writer`). On PostgreSQL it is one statement, concurrent with others.
    pub async fn publish(&self, event: &NewEvent) -> Result<Published, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Publish(event.clone(), reply)).await?;
        answer.await.map_err(|_| super::writer_gone())?
    }
    /// Events published in `[from_ms, to_ms)`, of `action` if given, in publishing-time
    /// order, after the cursor `after` (the `(created_ms, seq)` of the last one seen), at
    /// most `limit`. Each form is served by an index in that order: a page costs its own
    /// rows, not the events before it or of other actions.
    pub async fn events(
        &self,
        action: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        // Rows strictly after (from - 1 ms, any seq) are those from `from_ms` on.
        let start = (from_ms.saturating_sub(1), i64::MAX);
        let (after_ms, after_seq) = after.map_or(start, |cursor| cursor.max(start));
        let statement = match action {
            Some(_) => concat!(
                event_select!(),
                " WHERE action = $1 AND (created_ms, seq) > ($2, $3) AND created_ms < $4 ORDER BY created_ms, seq LIMIT $5"
            ),
            None => concat!(
                event_select!(),
                " WHERE (created_ms, seq) > ($1, $2) AND created_ms < $3 ORDER BY created_ms, seq LIMIT $4"
            ),
        };
        let mut query = sqlx::query(statement);
        if let Some(action) = action {
            query = query.bind(action);
        }
        let rows = query
            .bind(after_ms)
            .bind(after_seq)
            .bind(to_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get("seq")?,
                    id: r.try_get("id")?,
                    action: r.try_get("action")?,
                    application: r.try_get("application")?,
                    payload: r.try_get("payload")?,
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }

    /// Queues the events of `subscription`'s action published in `[from_ms, to_ms)` to it
    /// again, as one replay: delivered one at a time in publishing order, each with its
    /// original id. Returns how many were queued.
    pub async fn replay(
        &self,
        subscription: &str,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let Some(target) = self.subscription(subscription).await? else {
            return Err(StoreError::NotFound(format!(
                "subscription `{subscription}`"
            )));
        };
        // Any positive number no other replay has: the replay's deliveries go in order.
        let replay = i64::try_from(fastrand::u64(1..1 << 62)).unwrap_or(1);
        let mut transaction = self.begin_write().await?;
        let queued = sqlx::query(
            "INSERT INTO deliveries (event_seq, subscription, status, attempts, due_ms, lease_until_ms, replay, updated_ms) \
             SELECT seq, $1, 'pending', 0, $2, 0, $3, $2 FROM events \
             WHERE action = $4 AND created_ms >= $5 AND created_ms < $6 ORDER BY seq",
        )
        .bind(subscription)
        .bind(now_ms)
        .bind(replay)
        .bind(&target.action)
        .bind(from_ms)
        .bind(to_ms)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        transaction.commit().await?;
        Ok(queued)
    }
}

/// `INSERT INTO events` of each chunk size, with `RETURNING seq, id`.
static INSERT_EVENTS: std::sync::LazyLock<Vec<(usize, String)>> = std::sync::LazyLock::new(|| {
    super::multi_row(
        "INSERT INTO events (id, action, application, payload, idempotency_key, created_ms) VALUES ",
        &["{}"; 6],
        " ON CONFLICT DO NOTHING RETURNING seq, id",
    )
});

/// [`Store::publish`] of the writer's batch on SQLite, inside its transaction: the events
/// by multi-row inserts, then their deliveries by one statement, so a batch costs a few
/// statements rather than two per event (each a trip to SQLite's thread). Answers in the
/// order given; an event whose idempotency key was seen (before, or earlier in the batch)
/// stores nothing and answers the earlier one.
pub(super) async fn publish_batch_in(
    connection: &mut sqlx::AnyConnection,
    events: &[&NewEvent],
) -> Result<Vec<Published>, sqlx::Error> {
    let mut seqs = std::collections::HashMap::with_capacity(events.len());
    let mut rest = events;
    while let Some((rows, statement)) = super::chunk(&INSERT_EVENTS, rest.len()) {
        let (chunk, tail) = rest.split_at(rows);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
        for event in chunk {
            query = bind_event(query, event);
        }
        for row in query.fetch_all(&mut *connection).await? {
            seqs.insert(
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("seq")?,
            );
        }
        rest = tail;
    }
    let mut deliveries = std::collections::HashMap::<i64, u64>::new();
    if let (Some(first), Some(last)) = (seqs.values().min(), seqs.values().max()) {
        // The writer holds SQLite's write lock and sequence numbers only grow: the range
        // holds this batch's new events and no others.
        let rows = sqlx::query(
            "INSERT INTO deliveries (event_seq, subscription, status, attempts, due_ms, lease_until_ms, replay, updated_ms) \
             SELECT e.seq, s.name, 'pending', 0, e.created_ms, 0, 0, e.created_ms \
             FROM events e JOIN subscriptions s ON s.action = e.action AND s.enabled = 1 \
             WHERE e.seq >= $1 AND e.seq <= $2 RETURNING event_seq",
        )
        .bind(*first)
        .bind(*last)
        .fetch_all(&mut *connection)
        .await?;
        for row in rows {
            *deliveries.entry(row.try_get("event_seq")?).or_default() += 1;
        }
    }
    let mut published = Vec::with_capacity(events.len());
    for event in events {
        published.push(match seqs.get(&event.id) {
            Some(&seq) => Published {
                id: event.id.clone(),
                seq,
                created_ms: event.created_ms,
                deliveries: deliveries.get(&seq).copied().unwrap_or(0),
                duplicate: false,
            },
            None => earlier(connection, event).await?,
        });
    }
    Ok(published)
}

/// The event an idempotency key already stored (the id is random, so it is the key that
/// collided): nothing was written, the earlier event stands.
async fn earlier(
    connection: &mut sqlx::AnyConnection,
    event: &NewEvent,
) -> Result<Published, sqlx::Error> {
    let earlier = sqlx::query(
        "SELECT id, seq, created_ms FROM events WHERE application = $1 AND idempotency_key = $2",
    )
    .bind(&event.application)
    .bind(event.idempotency_key.as_deref())
    .fetch_one(&mut *connection)
    .await?;
    Ok(Published {
        id: earlier.try_get("id")?,
        seq: earlier.try_get("seq")?,
        created_ms: earlier.try_get("created_ms")?,
        deliveries: 0,
        duplicate: true,
    })
}

/// [`Store::publish`] on PostgreSQL: the event and its deliveries by one statement, which
/// is one transaction (both or neither) in one round trip instead of four.
pub(super) async fn publish_postgres(
    connection: &mut sqlx::AnyConnection,
    event: &NewEvent,
) -> Result<Published, sqlx::Error> {
    let inserted = bind_event(
        sqlx::query("WITH e AS (INSERT INTO events (id, action, application, payload, idempotency_key, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING seq), \
         d AS (INSERT INTO deliveries (event_seq, subscription, status, attempts, due_ms, lease_until_ms, replay, updated_ms) \
         SELECT e.seq, s.name, 'pending', 0, $6, 0, 0, $6 FROM e JOIN subscriptions s ON s.action = $2 AND s.enabled = 1 \
         RETURNING 1) \
         SELECT e.seq, (SELECT count(*) FROM d) AS deliveries FROM e"),
        event,
    )
    .fetch_optional(&mut *connection)
    .await?;
    let Some(inserted) = inserted else {
        return earlier(connection, event).await;
    };
    let deliveries: i64 = inserted.try_get("deliveries")?;
    Ok(Published {
        id: event.id.clone(),
        seq: inserted.try_get("seq")?,
        created_ms: event.created_ms,
        deliveries: u64::try_from(deliveries).unwrap_or(0),
        duplicate: false,
    })
}

/// `query` with `event`'s columns bound next, in this order: id, action, application,
/// payload, idempotency key, time.
fn bind_event<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    event: &'q NewEvent,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(&event.id)
        .bind(&event.action)
        .bind(&event.application)
        .bind(&event.payload)
        .bind(event.idempotency_key.as_deref())
        .bind(event.created_ms)
}
