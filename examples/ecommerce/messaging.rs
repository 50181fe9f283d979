//! The shop's messages (`--messaging`; needs NATS on 127.0.0.1:4222 and RabbitMQ on
//! 127.0.0.1:5672, or `NATS_URL` and `RABBITMQ_URL`):
//!
//! - order creation asks user-service over NATS whether the customer may order
//!   (`send("user.validate")`), then emits `order.placed`;
//! - inventory and notification each handle `order.placed` (two groups, so each gets it);
//! - catalog tells order-service of a price change with urgency `high`, through a RabbitMQ
//!   queue (`send_to_service`) that a bridge delivers to order-service's HTTP endpoint
//!   through the SDK's HTTP pipeline.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use sdk::{http::StatusCode, ServiceResult, ServiceSdk};
use sdk_messaging::{
    handler_error, message_interface, MessageContext, Messaging, MessagingConfig, RabbitSettings,
    TransportKind, Urgency,
};
use serde::{Deserialize, Serialize};

use super::services::Error;

/// "May this customer order?"
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserCheck {
    pub(crate) user_id: u64,
}

/// The answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserValidity {
    pub(crate) valid: bool,
}

/// An order was placed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct OrderPlaced {
    pub(crate) order_id: u64,
    pub(crate) user_id: u64,
    pub(crate) lines: u32,
}

/// The messages order-service sends.
#[message_interface]
pub(crate) trait ShopMessages {
    /// Asked of user-service.
    #[message_pattern("shop.user.validate")]
    #[timeout("2s")]
    #[idempotent]
    async fn validate_user(&self, check: UserCheck) -> ServiceResult<UserValidity>;

    /// Told to whoever subscribed.
    #[event_pattern("shop.order.placed")]
    async fn order_placed(&self, event: OrderPlaced) -> ServiceResult<()>;
}

/// What happened.
#[derive(Debug, Default)]
pub(crate) struct MessagingReport {
    /// Whether user 7 was valid, and user 0.
    pub(crate) validations: Vec<(u64, bool)>,
    /// Orders inventory reserved stock for.
    pub(crate) reserved: Vec<u64>,
    /// Orders notification mailed about.
    pub(crate) mailed: Vec<u64>,
    /// The price changes order-service received over HTTP, with their `x-urgency`.
    pub(crate) price_updates: Vec<(serde_json::Value, String)>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// user-service answers validations; inventory and notification handle placed orders.
async fn start_servers(
    nats: &Messaging,
    report: &Arc<Mutex<MessagingReport>>,
) -> Result<[sdk_messaging::RunningServer; 3], Error> {
    let users = nats
        .server("user-service")
        .message_pattern(
            "shop.user.validate",
            |check: UserCheck, _: MessageContext| async move {
                if check.user_id == 0 {
                    return Err(handler_error(StatusCode::UNPROCESSABLE_ENTITY, "no user 0"));
                }
                Ok(UserValidity {
                    valid: check.user_id % 2 == 1,
                })
            },
        )
        .start()
        .await?;
    let sink = report.clone();
    let inventory = nats
        .server("inventory-service")
        .event_pattern(
            "shop.order.placed",
            move |event: OrderPlaced, _: MessageContext| {
                sink.lock()
                    .map(|mut r| r.reserved.push(event.order_id))
                    .ok();
                async { Ok(()) }
            },
        )
        .start()
        .await?;
    let sink = report.clone();
    let notification = nats
        .server("notification-service")
        .event_pattern(
            "shop.order.*",
            move |event: OrderPlaced, context: MessageContext| {
                sink.lock().map(|mut r| r.mailed.push(event.order_id)).ok();
                tracing::info!(pattern = %context.pattern, order = event.order_id, "mail sent");
                async { Ok(()) }
            },
        )
        .start()
        .await?;
    Ok([users, inventory, notification])
}

/// order-service validates two users: one it may serve, and one the service refuses.
async fn validate_users(
    shop: &ShopMessagesClient,
    report: &Arc<Mutex<MessagingReport>>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    for user_id in [7u64, 0] {
        match shop.validate_user(UserCheck { user_id }).await {
            Ok(answer) => {
                writeln!(out, "user.validate {user_id}: valid = {}", answer.valid)?;
                report
                    .lock()
                    .map(|mut r| r.validations.push((user_id, answer.valid)))
                    .ok();
            }
            Err(e) => {
                writeln!(
                    out,
                    "user.validate {user_id}: refused ({})",
                    e.status_code().map_or(0, |s| s.as_u16())
                )?;
                report
                    .lock()
                    .map(|mut r| r.validations.push((user_id, false)))
                    .ok();
            }
        }
    }
    Ok(())
}

/// Runs the messaging part, printing to `out`.
pub(crate) async fn run(out: &mut dyn Write) -> Result<MessagingReport, Error> {
    let nats_url = env_or("NATS_URL", "nats://127.0.0.1:4222");
    let nats = Messaging::connect(
        "shop",
        &MessagingConfig::new(TransportKind::Nats, &nats_url).timeout(Duration::from_secs(5)),
    )
    .await?;
    let report = Arc::new(Mutex::new(MessagingReport::default()));

    let servers = start_servers(&nats, &report).await?;
    let shop = ShopMessagesClient::new(&nats);
    validate_users(&shop, &report, out).await?;
    shop.order_placed(OrderPlaced {
        order_id: 1001,
        user_id: 7,
        lines: 2,
    })
    .await?;
    writeln!(out, "order.placed 1001 emitted (stored by JetStream)")?;

    let price_updates = price_change(out, report.clone()).await?;
    let done = || {
        report
            .lock()
            .map(|r| {
                r.reserved.len() == 1
                    && r.mailed.len() == 1
                    && r.price_updates.len() == price_updates
            })
            .unwrap_or(false)
    };
    for _ in 0..100 {
        if done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for server in servers {
        server.shutdown().await;
    }
    let report = std::mem::take(&mut *report.lock().map_err(|_| "report lock")?);
    writeln!(
        out,
        "inventory reserved stock for {:?}; notification mailed about {:?}",
        report.reserved, report.mailed
    )?;
    for (body, urgency) in &report.price_updates {
        writeln!(
            out,
            "order-service got a price change over HTTP ({urgency}): {body}"
        )?;
    }
    Ok(report)
}

/// catalog → RabbitMQ queue → bridge → order-service's HTTP endpoint. Returns how many
/// changes were sent.
async fn price_change(
    out: &mut dyn Write,
    report: Arc<Mutex<MessagingReport>>,
) -> Result<usize, Error> {
    let amqp = env_or("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let rabbit = Messaging::connect(
        "catalog",
        &MessagingConfig::new(TransportKind::RabbitMq, &amqp)
            .timeout(Duration::from_secs(5))
            // The example's queue is named from a port of the moment: let RabbitMQ delete
            // it a minute after the bridge stops.
            .rabbitmq(RabbitSettings::new().queue_expires(Duration::from_secs(60))),
    )
    .await?;
    // order-service's price endpoint (a small axum app on loopback).
    let seen = Arc::new(AtomicUsize::new(0));
    let (sink, count) = (report.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/api/v1/prices",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
                let urgency = headers
                    .get("x-urgency")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                sink.lock()
                    .map(|mut r| r.price_updates.push((body.0, urgency)))
                    .ok();
                count.fetch_add(1, Ordering::SeqCst);
                async { StatusCode::NO_CONTENT }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = format!("http://{}/api/v1/prices", listener.local_addr()?);
    let http = tokio::spawn(async move { axum::serve(listener, app).await });

    let sdk = ServiceSdk::builder().build()?;
    let bridge = rabbit
        .server("order-service")
        .deliver_to_http(&target, &sdk)
        .start()
        .await?;
    rabbit
        .client()
        .send_to_service(
            &target,
            "catalog-service",
            "POST",
            &serde_json::json!({ "product_id": 123, "action": "price_updated", "price_cents": 4_500 }),
            Urgency::High,
        )
        .await?;
    writeln!(
        out,
        "catalog: price change queued with urgency high in {}",
        sdk_messaging::service_queue::queue_name(&target)
    )?;
    for _ in 0..100 {
        if seen.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bridge.shutdown().await;
    http.abort();
    Ok(1)
}
