//! Applications, actions and subscriptions: what the admin sets up.

use sqlx::Row as _;

use super::{Store, StoreError};

/// The columns of a [`SubscriptionRow`] (a macro, so statements stay `&'static str`).
macro_rules! subscription_select {
    () => {
        "SELECT name, application, action, handler, secret, previous_secret, previous_until_ms, \
         enabled, disabled_reason, created_ms FROM subscriptions"
    };
}

/// A stored application.
#[derive(Clone, Debug)]
pub struct ApplicationRow {
    /// Its name.
    pub name: String,
    /// Its base address, as given.
    pub address: String,
    /// Its signing secret (`whsec_...`): the default of its subscriptions.
    pub secret: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

/// A stored action.
#[derive(Clone, Debug)]
pub struct ActionRow {
    /// Its name (`user.created`).
    pub name: String,
    /// The application that owns (and alone publishes) it.
    pub application: String,
    /// Its JSON Schema, as text.
    pub schema: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

/// A stored subscription.
#[derive(Clone, Debug)]
pub struct SubscriptionRow {
    /// Its name, unique on the bus.
    pub name: String,
    /// The subscribing application.
    pub application: String,
    /// The action it receives.
    pub action: String,
    /// Where deliveries go.
    pub handler: String,
    /// The signing secret (`whsec_...`).
    pub secret: String,
    /// The secret being rotated out, and until when (ms) it still signs.
    pub previous_secret: Option<(String, i64)>,
    /// Whether deliveries are made (a `410 Gone` turns it off).
    pub enabled: bool,
    /// Why it was turned off.
    pub disabled_reason: Option<String>,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

fn conflict_or(e: sqlx::Error, what: String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound(what),
        _ => StoreError::Database(e),
    }
}

impl Store {
    /// Stores a new application; `Conflict` if the name is taken.
    pub async fn create_application(
        &self,
        row: &ApplicationRow,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO applications (name, address, token_hash, secret, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.name)
        .bind(&row.address)
        .bind(token_hash)
        .bind(&row.secret)
        .bind(row.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, format!("application `{}`", row.name)))?;
        Ok(())
    }

    /// The application whose token hashes to `token_hash`.
    pub async fn application_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT name FROM applications WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }

    /// One application.
    pub async fn application(&self, name: &str) -> Result<Option<ApplicationRow>, StoreError> {
        let row = sqlx::query(
            "SELECT name, address, secret, created_ms FROM applications WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| application_row(&r)).transpose()
    }

    /// The application `name`, or `NotFound`.
    pub async fn require_application(&self, name: &str) -> Result<ApplicationRow, StoreError> {
        self.application(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("application `{name}`")))
    }

    /// Every application, by name.
    pub async fn applications(&self) -> Result<Vec<ApplicationRow>, StoreError> {
        let rows =
            sqlx::query("SELECT name, address, secret, created_ms FROM applications ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(application_row).collect()
    }

    /// Stores a new action; `Conflict` if the name is taken, `NotFound` if the
    /// application is not there.
    pub async fn create_action(&self, row: &ActionRow) -> Result<(), StoreError> {
        self.require_application(&row.application).await?;
        sqlx::query(
            "INSERT INTO actions (name, application, schema, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&row.name)
        .bind(&row.application)
        .bind(&row.schema)
        .bind(row.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, format!("action `{}`", row.name)))?;
        Ok(())
    }

    /// One action.
    pub async fn action(&self, name: &str) -> Result<Option<ActionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT name, application, schema, created_ms FROM actions WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| action_row(&r)).transpose()
    }

    /// Every action, by name.
    pub async fn actions(&self) -> Result<Vec<ActionRow>, StoreError> {
        let rows =
            sqlx::query("SELECT name, application, schema, created_ms FROM actions ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(action_row).collect()
    }

    /// Stores a new subscription; `Conflict` if the name is taken, `NotFound` if its
    /// application or action is not there.
    pub async fn create_subscription(&self, row: &SubscriptionRow) -> Result<(), StoreError> {
        self.require_application(&row.application).await?;
        if self.action(&row.action).await?.is_none() {
            return Err(StoreError::NotFound(format!("action `{}`", row.action)));
        }
        sqlx::query(
            "INSERT INTO subscriptions (name, application, action, handler, secret, enabled, created_ms) \
             VALUES ($1, $2, $3, $4, $5, 1, $6)",
        )
        .bind(&row.name)
        .bind(&row.application)
        .bind(&row.action)
        .bind(&row.handler)
        .bind(&row.secret)
        .bind(row.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, format!("subscription `{}`", row.name)))?;
        Ok(())
    }

    /// One subscription.
    pub async fn subscription(&self, name: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let row = sqlx::query(concat!(subscription_select!(), " WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| subscription_row(&r)).transpose()
    }

    /// Every subscription, by name.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let rows = sqlx::query(concat!(subscription_select!(), " ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subscription_row).collect()
    }

    /// Makes `secret` the subscription's signing secret; the one it had keeps signing
    /// alongside until `previous_until_ms`.
    pub async fn rotate_secret(
        &self,
        name: &str,
        secret: &str,
        previous_until_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE subscriptions SET previous_secret = secret, previous_until_ms = $1, secret = $2 WHERE name = $3",
        )
        .bind(previous_until_ms)
        .bind(secret)
        .bind(name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("subscription `{name}`")));
        }
        Ok(())
    }

    /// Turns deliveries to a subscription on or off (off with the reason).
    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE subscriptions SET enabled = $1, disabled_reason = $2 WHERE name = $3",
        )
        .bind(i64::from(enabled))
        .bind(reason)
        .bind(name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("subscription `{name}`")));
        }
        Ok(())
    }
}

fn application_row(r: &sqlx::any::AnyRow) -> Result<ApplicationRow, StoreError> {
    Ok(ApplicationRow {
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        secret: r.try_get("secret")?,
        created_ms: r.try_get("created_ms")?,
    })
}

fn action_row(r: &sqlx::any::AnyRow) -> Result<ActionRow, StoreError> {
    Ok(ActionRow {
        name: r.try_get("name")?,
        application: r.try_get("application")?,
        schema: r.try_get("schema")?,
        created_ms: r.try_get("created_ms")?,
    })
}

fn subscription_row(r: &sqlx::any::AnyRow) -> Result<SubscriptionRow, StoreError> {
    let previous: Option<String> = r.try_get("previous_secret")?;
    let until: Option<i64> = r.try_get("previous_until_ms")?;
    let enabled: i64 = r.try_get("enabled")?;
    Ok(SubscriptionRow {
        name: r.try_get("name")?,
        application: r.try_get("application")?,
        action: r.try_get("action")?,
        handler: r.try_get("handler")?,
        secret: r.try_get("secret")?,
        previous_secret: previous.zip(until),
        enabled: enabled != 0,
        disabled_reason: r.try_get("disabled_reason")?,
        created_ms: r.try_get("created_ms")?,
    })
}
