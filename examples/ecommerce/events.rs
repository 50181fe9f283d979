//! The shop's domain events through the event bus (`--events`; needs nothing installed):
//!
//! - the bus itself (`sdk-events`'s server and dispatcher) on a SQLite file;
//! - user-service publishes `user.created`, order-service `order.placed`, each with its own
//!   token through the typed `EventBus` client;
//! - email-service subscribes to `user.created`, analytics-service to both; each receives
//!   signed deliveries and checks them with the `VerifiedEvent` extractor;
//! - a payload the schema refuses is answered 422, naming the field.

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{routing::post, Router};
use sdk::ServiceSdk;
use sdk_events::{
    clock::Clock,
    dispatcher::{Dispatcher, DispatcherConfig},
    server::{router, Bus, BusConfig},
    signature::Secret,
    store::Store,
    EventBus, VerifiedEvent, WebhookSecrets,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::services::Error;

const ADMIN: &str = "shop-admin-token";

/// A new customer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserCreated {
    pub(crate) user_id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) plan: String,
}

/// What the events did.
#[derive(Debug, Default)]
pub(crate) struct EventsReport {
    /// The addresses email-service welcomed.
    pub(crate) welcomed: Vec<String>,
    /// The actions analytics-service counted, in arrival order.
    pub(crate) counted: Vec<String>,
    /// The status of a publish with a bad email address.
    pub(crate) refused_status: Option<u16>,
}

async fn serve(app: Router) -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// The bus on a fresh SQLite file, with a dispatcher: its URL.
async fn start_bus(dir: &std::path::Path) -> Result<String, Error> {
    let store = Store::open(&format!("sqlite:{}", dir.join("events.db").display())).await?;
    let sdk = ServiceSdk::builder().build()?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        sdk,
        DispatcherConfig::default(),
        Clock::new(),
    );
    let config = BusConfig {
        admin_token: Some(ADMIN.into()),
        // The handlers here are on this machine.
        handlers: sdk::registry::AddressPolicy::any(),
        ..BusConfig::default()
    };
    let bus = Bus::new(store, config, Clock::new(), Some(dispatcher.waker()))?;
    tokio::spawn(dispatcher.run(std::future::pending()));
    serve(router(bus)).await
}

async fn admin(http: &reqwest::Client, url: String, body: Value) -> Result<Value, Error> {
    let response = http.post(url).bearer_auth(ADMIN).json(&body).send().await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("the bus refused set-up: {answer}").into());
    }
    Ok(answer)
}

/// Creates an application: its publishing token and its secret.
async fn application(
    http: &reqwest::Client,
    bus: &str,
    name: &str,
) -> Result<(String, String), Error> {
    let answer = admin(
        http,
        format!("{bus}/v1/applications"),
        json!({"application": name, "address": format!("http://{name}.shop.local")}),
    )
    .await?;
    let text = |field: &str| answer[field].as_str().unwrap_or_default().to_owned();
    Ok((text("token"), text("secret")))
}

/// A receiving service: records what `record` makes of each verified delivery.
async fn receiver<T, F>(secret: &str, record: F) -> Result<String, Error>
where
    T: serde::de::DeserializeOwned + Send + 'static,
    F: Fn(VerifiedEvent<T>) + Clone + Send + Sync + 'static,
{
    let secrets = WebhookSecrets(vec![Secret::parse(secret)?]);
    let app = Router::new()
        .route(
            "/webhooks",
            post(move |event: VerifiedEvent<T>| {
                let record = record.clone();
                async move {
                    record(event);
                    "ok"
                }
            }),
        )
        .with_state(secrets);
    Ok(format!("{}/webhooks", serve(app).await?))
}

/// What a receiver got, as it got it.
type Received = Arc<Mutex<Vec<String>>>;

/// The applications' tokens and the receivers' secrets.
struct Tokens {
    users: String,
    orders: String,
    email_secret: String,
    analytics_secret: String,
}

/// Creates the four applications and the two actions with their schemas.
async fn set_up(http: &reqwest::Client, bus: &str) -> Result<Tokens, Error> {
    let (users_token, _) = application(http, bus, "user-service").await?;
    let (orders_token, _) = application(http, bus, "order-service").await?;
    let (_, email_secret) = application(http, bus, "email-service").await?;
    let (_, analytics_secret) = application(http, bus, "analytics-service").await?;
    let user_schema = json!({"type": "object", "required": ["user_id", "email", "name"],
        "properties": {"user_id": {"type": "string"}, "email": {"type": "string", "format": "email"},
                       "name": {"type": "string"}, "plan": {"type": "string", "enum": ["free", "premium"]}}});
    let order_schema = json!({"type": "object", "required": ["order_id", "user_id"],
        "properties": {"order_id": {"type": "integer"}, "user_id": {"type": "string"}}});
    for (action, owner, schema) in [
        ("user.created", "user-service", user_schema),
        ("order.placed", "order-service", order_schema),
    ] {
        admin(
            http,
            format!("{bus}/v1/actions"),
            json!({"action": action, "application": owner, "schemata": schema}),
        )
        .await?;
    }
    Ok(Tokens {
        users: users_token,
        orders: orders_token,
        email_secret,
        analytics_secret,
    })
}

/// Starts the email and analytics receivers and subscribes them: what each received.
async fn subscribe(
    http: &reqwest::Client,
    bus: &str,
    tokens: &Tokens,
) -> Result<(Received, Received), Error> {
    let (email_secret, analytics_secret) = (&tokens.email_secret, &tokens.analytics_secret);

    let welcomed = Arc::new(Mutex::new(Vec::new()));
    let counted = Arc::new(Mutex::new(Vec::new()));
    let sink = welcomed.clone();
    let email = receiver(email_secret, move |event: VerifiedEvent<UserCreated>| {
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.payload.email);
    })
    .await?;
    let sink = counted.clone();
    let analytics = receiver(analytics_secret, move |event: VerifiedEvent<Value>| {
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.action);
    })
    .await?;
    for (application, name, action, handler) in [
        ("email-service", "welcome-emails", "user.created", &email),
        (
            "analytics-service",
            "analytics-users",
            "user.created",
            &analytics,
        ),
        (
            "analytics-service",
            "analytics-orders",
            "order.placed",
            &analytics,
        ),
    ] {
        admin(http, format!("{bus}/v1/subscriptions"),
            json!({"application": application, "subscription": name, "action": action, "handler": handler})).await?;
    }
    Ok((welcomed, counted))
}

/// Publishes a user and an order, and a user the schema refuses: the refusal's status.
async fn publish(bus: &str, tokens: &Tokens, out: &mut dyn Write) -> Result<Option<u16>, Error> {
    let sdk = ServiceSdk::builder().build()?;
    let users = EventBus::at(&sdk, bus, &tokens.users)?;
    let orders = EventBus::at(&sdk, bus, &tokens.orders)?;
    let ann = UserCreated {
        user_id: "u7".into(),
        email: "ann@example.com".into(),
        name: "Ann".into(),
        plan: "premium".into(),
    };
    let published = users.publish("user.created", &ann).await?;
    writeln!(
        out,
        "   user-service published user.created ({}, {} deliveries)",
        published.id, published.deliveries
    )?;
    let placed = orders
        .publish("order.placed", &json!({"order_id": 1001, "user_id": "u7"}))
        .await?;
    writeln!(
        out,
        "   order-service published order.placed ({}, {} delivery)",
        placed.id, placed.deliveries
    )?;
    let refused = users
        .publish(
            "user.created",
            &UserCreated {
                email: "not-an-email".into(),
                ..ann
            },
        )
        .await
        .err();
    let refused_status = refused
        .as_ref()
        .and_then(|e| e.status_code())
        .map(|s| s.as_u16());
    if let Some(e) = &refused {
        let said = e
            .body()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        writeln!(
            out,
            "   a bad email address is refused ({:?}): {said}",
            refused_status
        )?;
    }
    Ok(refused_status)
}

/// Runs the events part, printing to `out`.
pub(crate) async fn run(out: &mut dyn Write) -> Result<EventsReport, Error> {
    let dir = std::env::temp_dir().join(format!("shop-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bus = start_bus(&dir).await?;
    writeln!(out, "   event bus on {bus} (SQLite in {})", dir.display())?;
    let http = reqwest::Client::new();
    let tokens = set_up(&http, &bus).await?;
    let (welcomed, counted) = subscribe(&http, &bus, &tokens).await?;
    let refused_status = publish(&bus, &tokens, out).await?;
    for _ in 0..200 {
        let (mailed, seen) = (
            welcomed.lock().map(|w| w.len()),
            counted.lock().map(|c| c.len()),
        );
        if mailed.unwrap_or(0) >= 1 && seen.unwrap_or(0) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let report = EventsReport {
        welcomed: welcomed.lock().map(|w| w.clone()).unwrap_or_default(),
        counted: counted.lock().map(|c| c.clone()).unwrap_or_default(),
        refused_status,
    };
    writeln!(
        out,
        "   email-service welcomed {:?} (signature verified)",
        report.welcomed
    )?;
    writeln!(out, "   analytics-service counted {:?}", report.counted)?;
    if let Some(status) = report.refused_status {
        writeln!(
            out,
            "   (the refusal was HTTP {status}, and nothing was stored)"
        )?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}
