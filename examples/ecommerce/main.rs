//! A small shop on loopback: the `sdk-registry` server, a user service (two instances), an
//! order service and a payment service, all registering themselves, and a gateway that calls
//! them through generated clients.
//!
//! ```text
//! cargo run --example ecommerce                    # the happy path
//! cargo run --example ecommerce -- --kill-payment  # payment-service dies midway
//! cargo run --example ecommerce -- --messaging     # then messages over NATS and RabbitMQ
//! cargo run --example ecommerce -- --events        # then domain events through the event bus
//! ```
//!
//! The gateway shows a cached user lookup, an order POST that is not retried, a payment call
//! behind a circuit breaker, and a dashboard that fans out with `Batch` and `batch_call`.
//! With `--kill-payment` the payment service is killed after the first dashboard: its breaker
//! opens, and the dashboard keeps answering with the parts that still work.
//!
//! `tests/ecommerce.rs` runs both modes and checks what they report.

mod api;
mod events;
mod messaging;
mod model;
mod services;

use std::{
    io::Write,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use sdk::{batch::Batch, prelude::*, registry::HttpBackend};

use self::{
    api::{Orders, OrdersClient, Payments, PaymentsClient, Users, UsersClient},
    model::{Line, NewOrder, NewPayment, Order, Payment, User},
    services::{Counters, Error, ServiceProcess},
};

/// What to run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// Make payment-service hang (take requests, answer none) for one dashboard.
    pub(crate) stall_payment: bool,
    /// Kill payment-service after the first dashboard.
    pub(crate) kill_payment: bool,
    /// Then run the messaging part (NATS and RabbitMQ).
    pub(crate) messaging: bool,
    /// Then run the event bus part.
    pub(crate) events: bool,
}

/// What happened, for the integration test.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// user-service requests caused by the gateway's three lookups of one customer.
    pub(crate) user_requests_for_three_lookups: usize,
    /// The status of the first order POST (order-service is warming up).
    pub(crate) first_order_status: Option<u16>,
    /// POSTs order-service saw for that first, failed order.
    pub(crate) posts_for_failed_order: usize,
    /// The order placed on the second try.
    pub(crate) order: Option<Order>,
    /// The payment for it.
    pub(crate) payment: Option<Payment>,
    /// The first dashboard.
    pub(crate) dashboard: Option<Dashboard>,
    /// How many of the five top customers `batch_call` fetched.
    pub(crate) top_customers: usize,
    /// With `stall_payment`: the dashboard while payment-service hangs.
    pub(crate) dashboard_while_stalled: Option<Dashboard>,
    /// With `kill_payment`: each charge attempted after the kill.
    pub(crate) charges_after_kill: Vec<ChargeOutcome>,
    /// With `kill_payment`: the dashboard after the kill.
    pub(crate) dashboard_after_kill: Option<Dashboard>,
    /// With `messaging`: what the messages did.
    pub(crate) messaging: Option<messaging::MessagingReport>,
    /// With `events`: what the events did.
    pub(crate) events: Option<events::EventsReport>,
}

/// How a charge ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChargeOutcome {
    /// Charged.
    Charged,
    /// Sent, and failed (the service is gone).
    Failed,
    /// Refused by the open breaker without being sent.
    RefusedByBreaker,
}

/// One customer's dashboard: three calls fanned out at once.
#[derive(Debug)]
pub(crate) struct Dashboard {
    pub(crate) user: ServiceResult<User>,
    pub(crate) orders: ServiceResult<Vec<Order>>,
    pub(crate) payments: ServiceResult<Vec<Payment>>,
    pub(crate) elapsed: Duration,
}

/// The gateway's clients.
struct Gateway {
    sdk: ServiceSdk,
    users: UsersClient,
    orders: OrdersClient,
    payments: PaymentsClient,
}

impl Gateway {
    /// Fans out the three calls of a customer's dashboard; each part succeeds or fails on
    /// its own, and the whole answers within 1 s.
    async fn dashboard(&self, user_id: u64) -> Dashboard {
        let started = Instant::now();
        let mut batch = Batch::new().deadline(Duration::from_secs(1));
        let (users, orders, payments) = (
            self.users.clone(),
            self.orders.clone(),
            self.payments.clone(),
        );
        let user = batch.add("user", async move { users.user(user_id).await });
        let order_list = batch.add("orders", async move { orders.orders_of(user_id).await });
        let recent = batch.add("payments", async move { payments.recent().await });
        let mut results = batch.run().await;
        Dashboard {
            user: results.take(&user),
            orders: results.take(&order_list),
            payments: results.take(&recent),
            elapsed: started.elapsed(),
        }
    }
}

fn part<T>(result: &ServiceResult<T>, describe: impl Fn(&T) -> String) -> String {
    match result {
        Ok(value) => describe(value),
        Err(e) if e.is_circuit_open() => "unavailable (circuit open)".into(),
        Err(e) => format!("unavailable ({e})"),
    }
}

fn print_dashboard(out: &mut dyn Write, dashboard: &Dashboard) -> std::io::Result<()> {
    writeln!(
        out,
        "   user:     {}",
        part(&dashboard.user, |u| format!("{} <{}>", u.name, u.email))
    )?;
    writeln!(
        out,
        "   orders:   {}",
        part(&dashboard.orders, |o| format!("{} order(s)", o.len()))
    )?;
    writeln!(
        out,
        "   payments: {}",
        part(&dashboard.payments, |p| format!(
            "{} recent charge(s)",
            p.len()
        ))
    )?;
    writeln!(out, "   answered in {:?}", dashboard.elapsed)
}

/// Step 1: three lookups of one user; the cache answers all but the first.
async fn cached_lookups(
    gateway: &Gateway,
    counters: &Counters,
    out: &mut dyn Write,
    report: &mut Report,
) -> Result<(), Error> {
    writeln!(out, "\n1. A cached user lookup")?;
    let before = counters.user_lookups.load(Ordering::SeqCst);
    for _ in 0..3 {
        let started = Instant::now();
        let user = gateway.users.user(7).await?;
        writeln!(
            out,
            "   users.user(7) -> {} in {:?}",
            user.name,
            started.elapsed()
        )?;
    }
    report.user_requests_for_three_lookups = counters.user_lookups.load(Ordering::SeqCst) - before;
    writeln!(
        out,
        "   user-service saw {} request(s) for three lookups",
        report.user_requests_for_three_lookups
    )?;
    Ok(())
}

/// Step 2: an order refused while its service warms up (a POST, not retried), then placed.
async fn place_order(
    gateway: &Gateway,
    counters: &Counters,
    out: &mut dyn Write,
    report: &mut Report,
) -> Result<Order, Error> {
    writeln!(out, "\n2. Placing an order (a POST: never retried)")?;
    let new_order = NewOrder {
        user_id: 7,
        lines: vec![
            Line {
                sku: "lamp".into(),
                quantity: 1,
                unit_cents: 4_900,
            },
            Line {
                sku: "mug".into(),
                quantity: 2,
                unit_cents: 1_250,
            },
        ],
    };
    let err = gateway
        .orders
        .place(new_order.clone())
        .await
        .err()
        .ok_or("order-service accepted the order while warming up")?;
    report.first_order_status = err.status_code().map(|s| s.as_u16());
    report.posts_for_failed_order = counters.order_posts.load(Ordering::SeqCst);
    writeln!(
        out,
        "   first try: {err}\n   order-service saw {} POST: the SDK did not retry it, so no order can be placed twice",
        report.posts_for_failed_order
    )?;
    let order = gateway.orders.place(new_order).await?;
    writeln!(
        out,
        "   second try: order {} placed, {} line(s), total {} cents (order-service checked the customer with its own generated client)",
        order.id,
        order.lines.len(),
        order.total_cents
    )?;
    Ok(order)
}

/// Step 3: paying for `order`.
async fn pay(
    gateway: &Gateway,
    order: &Order,
    out: &mut dyn Write,
    report: &mut Report,
) -> Result<(), Error> {
    writeln!(out, "\n3. Paying (behind a circuit breaker)")?;
    let payment = gateway
        .payments
        .charge(NewPayment {
            order_id: order.id,
            amount_cents: order.total_cents,
        })
        .await?;
    writeln!(
        out,
        "   payment {} for order {}: {} cents",
        payment.id, payment.order_id, payment.amount_cents
    )?;
    report.order = Some(order.clone());
    report.payment = Some(payment);
    Ok(())
}

/// Step 4: the dashboard's three calls at once, and five lookups with `batch_call`.
async fn fan_out(gateway: &Gateway, out: &mut dyn Write, report: &mut Report) -> Result<(), Error> {
    writeln!(out, "\n4. The dashboard: three calls fanned out with Batch")?;
    let dashboard = gateway.dashboard(7).await;
    print_dashboard(out, &dashboard)?;
    report.dashboard = Some(dashboard);
    let top = gateway
        .sdk
        .batch_call((1..=5).map(|id| {
            let users = gateway.users.clone();
            (format!("user-{id}"), async move { users.user(id).await })
        }))
        .await;
    report.top_customers = top.successes().count();
    writeln!(
        out,
        "   top customers via batch_call: {} of {} fetched",
        report.top_customers,
        top.len()
    )?;
    Ok(())
}

/// Five charges after payment-service died: failures until the breaker opens, then refused
/// at once.
async fn charge_a_dead_service(
    gateway: &Gateway,
    order: &Order,
    out: &mut dyn Write,
    report: &mut Report,
) -> Result<(), Error> {
    for attempt in 1..=5 {
        let started = Instant::now();
        let outcome = gateway
            .payments
            .charge(NewPayment {
                order_id: order.id,
                amount_cents: order.total_cents,
            })
            .await;
        let (kind, text) = match outcome {
            Ok(p) => (
                ChargeOutcome::Charged,
                format!("charged (payment {})", p.id),
            ),
            Err(e @ ServiceError::CircuitOpen { .. }) => (
                ChargeOutcome::RefusedByBreaker,
                format!("refused at once, nothing sent: {e}"),
            ),
            Err(e) => (ChargeOutcome::Failed, e.to_string()),
        };
        writeln!(out, "   charge {attempt}: {text} ({:?})", started.elapsed())?;
        report.charges_after_kill.push(kind);
    }
    writeln!(
        out,
        "   (a connection refused means the POST never reached the service, so it may be retried;\n    the third failure in a row opened the breaker, which now answers for the dead service)"
    )?;
    Ok(())
}

/// Runs the demo, printing to `out`.
pub(crate) async fn run(options: Options, out: &mut dyn Write) -> Result<Report, Error> {
    let mut report = Report::default();
    let counters = Arc::new(Counters::default());
    let registry = services::start_registry().await?;
    writeln!(out, "registry server on {}", registry.url)?;
    let mut fleet: Vec<ServiceProcess> = vec![
        services::user_service("users-1", &registry, counters.clone()).await?,
        services::user_service("users-2", &registry, counters.clone()).await?,
        services::order_service("orders-1", &registry, counters.clone()).await?,
        services::payment_service("payments-1", &registry, counters.clone()).await?,
    ];
    for service in &fleet {
        writeln!(out, "{:<16} on {} (registered)", service.name, service.url)?;
    }

    // The gateway discovers everything through the registry; reads need no token.
    let sdk = ServiceSdk::builder()
        .registry(HttpBackend::new(&registry.url, None)?)
        .build()?;
    let gateway = Gateway {
        users: UsersClient::new(&sdk),
        orders: OrdersClient::new(&sdk),
        payments: PaymentsClient::new(&sdk),
        sdk,
    };

    cached_lookups(&gateway, &counters, out, &mut report).await?;
    let order = place_order(&gateway, &counters, out, &mut report).await?;
    pay(&gateway, &order, out, &mut report).await?;
    fan_out(&gateway, out, &mut report).await?;
    let mut step = 5;
    if options.stall_payment {
        writeln!(
            out,
            "\n{step}. payment-service hangs: it takes requests and answers none"
        )?;
        step += 1;
        counters.payments_stalled.store(true, Ordering::SeqCst);
        let dashboard = gateway.dashboard(7).await;
        counters.payments_stalled.store(false, Ordering::SeqCst);
        print_dashboard(out, &dashboard)?;
        report.dashboard_while_stalled = Some(dashboard);
    }
    if options.kill_payment {
        writeln!(out, "\n{step}. payment-service dies")?;
        if let Some(payments) = fleet.iter_mut().find(|s| s.name == "payment-service") {
            payments.kill();
        }
        charge_a_dead_service(&gateway, &order, out, &mut report).await?;
        writeln!(
            out,
            "\n{}. The dashboard, with payment-service down",
            step + 1
        )?;
        let dashboard = gateway.dashboard(7).await;
        print_dashboard(out, &dashboard)?;
        report.dashboard_after_kill = Some(dashboard);
    }
    if options.messaging {
        writeln!(out, "\nmessaging")?;
        report.messaging = Some(messaging::run(out).await?);
    }
    if options.events {
        writeln!(out, "\nevents")?;
        report.events = Some(events::run(out).await?);
    }
    writeln!(out, "\ndone")?;
    drop(fleet);
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut options = Options::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--stall-payment" => options.stall_payment = true,
            "--kill-payment" => options.kill_payment = true,
            "--messaging" => options.messaging = true,
            "--events" => options.events = true,
            other => {
                return Err(format!(
                    "unknown argument `{other}` (try --stall-payment, --kill-payment, --messaging, --events)"
                )
                .into())
            }
        }
    }
    run(options, &mut std::io::stdout()).await?;
    Ok(())
}
