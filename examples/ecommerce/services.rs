//! The shop's back end: a registry server and three services (user, order, payment), each a
//! small axum app that registers itself with `register_current_service`.
//!
//! Each service runs on a tokio runtime of its own, standing in for its own process, so that
//! [`ServiceProcess::kill`] can stop one dead: its tasks vanish, its port refuses connections,
//! and it never deregisters (the registry keeps listing it until its TTL runs out), as after
//! a crash.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use sdk::{
    registry::{HttpBackend, ServiceInstance},
    ServiceSdk,
};
use sdk_registry::server::{router, serve, Limits, Registry, ServerConfig};

use super::{
    api::{Users, UsersClient},
    model::{NewOrder, NewPayment, Order, Payment, User},
};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// How the services reach the registry (writes need the token).
#[derive(Clone, Debug)]
pub(crate) struct RegistryAccess {
    pub(crate) url: String,
    token: String,
}

/// Starts the `sdk-registry` server (the same code as the binary) on a loopback port.
pub(crate) async fn start_registry() -> Result<RegistryAccess, Error> {
    let token = "shop-demo-token".to_owned();
    let registry = Registry::open(ServerConfig {
        token: Some(token.clone()),
        ..ServerConfig::default()
    })
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let forever = std::future::pending();
        if let Err(e) = serve(listener, router(registry), None, Limits::default(), forever).await {
            eprintln!("registry stopped: {e}");
        }
    });
    Ok(RegistryAccess { url, token })
}

/// What the services have seen, for the demo's report.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// GET /users/{id} requests reaching user-service.
    pub(crate) user_lookups: AtomicUsize,
    /// POST /orders requests reaching order-service.
    pub(crate) order_posts: AtomicUsize,
    /// POST /payments requests reaching payment-service.
    pub(crate) payment_posts: AtomicUsize,
    /// While set, payment-service takes requests and never answers them (a hung process).
    pub(crate) payments_stalled: AtomicBool,
}

/// One running service "process".
pub(crate) struct ServiceProcess {
    pub(crate) name: &'static str,
    pub(crate) url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ServiceProcess {
    /// Stops the service at once, as a crash would: no graceful shutdown, no deregistration.
    pub(crate) fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts service `name` (instance `id`) on its own runtime: an SDK on the registry, the app
/// `app` builds with it, a loopback listener, and the registration.
async fn start_service(
    name: &'static str,
    id: &str,
    registry: &RegistryAccess,
    app: impl FnOnce(ServiceSdk) -> Router + Send + 'static,
) -> Result<ServiceProcess, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()?;
    let (ready, started) = tokio::sync::oneshot::channel::<Result<String, Error>>();
    let (registry, id) = (registry.clone(), id.to_owned());
    runtime.spawn(async move {
        let setup = async {
            let backend = HttpBackend::new(&registry.url, Some(registry.token.clone()))?;
            let sdk = ServiceSdk::builder().registry(backend).build()?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let port = listener.local_addr()?.port();
            let registration = sdk
                .register_current_service(
                    ServiceInstance::new(name, ("127.0.0.1", port)).with_id(id),
                )
                .await?;
            Ok::<_, Error>((app(sdk), listener, registration, port))
        };
        match setup.await {
            Ok((app, listener, _registration, port)) => {
                let _ = ready.send(Ok(format!("http://127.0.0.1:{port}")));
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("{name} stopped: {e}");
                }
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    });
    let url = started
        .await
        .map_err(|_| format!("{name} did not start"))??;
    Ok(ServiceProcess {
        name,
        url,
        runtime: Some(runtime),
    })
}

/// user-service: customers 1 to 100.
pub(crate) async fn user_service(
    id: &str,
    registry: &RegistryAccess,
    counters: Arc<Counters>,
) -> Result<ServiceProcess, Error> {
    start_service("user-service", id, registry, move |_sdk| {
        Router::new()
            .route("/users/{id}", get(user))
            .with_state(counters)
    })
    .await
}

async fn user(
    State(counters): State<Arc<Counters>>,
    Path(id): Path<u64>,
) -> Result<Json<User>, StatusCode> {
    counters.user_lookups.fetch_add(1, Ordering::SeqCst);
    if !(1..=100).contains(&id) {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(User {
        id,
        name: format!("Customer {id}"),
        email: format!("customer{id}@example.com"),
    }))
}

struct OrderBook {
    counters: Arc<Counters>,
    users: UsersClient,
    next_id: AtomicU64,
    orders: Mutex<BTreeMap<u64, Order>>,
}

/// order-service: places orders (checking the customer with user-service) and lists them.
/// Its first POST answers 503, as a service still warming up would.
pub(crate) async fn order_service(
    id: &str,
    registry: &RegistryAccess,
    counters: Arc<Counters>,
) -> Result<ServiceProcess, Error> {
    start_service("order-service", id, registry, move |sdk| {
        let book = Arc::new(OrderBook {
            counters,
            users: UsersClient::new(&sdk),
            next_id: AtomicU64::new(1000),
            orders: Mutex::new(BTreeMap::new()),
        });
        Router::new()
            .route("/orders", post(place_order))
            .route("/users/{id}/orders", get(orders_of))
            .with_state(book)
    })
    .await
}

async fn place_order(
    State(book): State<Arc<OrderBook>>,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<Order>), (StatusCode, String)> {
    if book.counters.order_posts.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "warming up".into()));
    }
    match book.users.user(new.user_id).await {
        Ok(_) => {}
        Err(e) if e.status_code() == Some(StatusCode::NOT_FOUND) => {
            return Err((StatusCode::UNPROCESSABLE_ENTITY, "no such customer".into()))
        }
        Err(e) => return Err((StatusCode::BAD_GATEWAY, e.to_string())),
    }
    let total_cents = new
        .lines
        .iter()
        .map(|l| l.unit_cents * u64::from(l.quantity))
        .sum();
    let order = Order {
        id: book.next_id.fetch_add(1, Ordering::SeqCst),
        user_id: new.user_id,
        lines: new.lines,
        total_cents,
    };
    book.orders
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(order.id, order.clone());
    Ok((StatusCode::CREATED, Json(order)))
}

async fn orders_of(State(book): State<Arc<OrderBook>>, Path(user): Path<u64>) -> Json<Vec<Order>> {
    let orders = book.orders.lock().unwrap_or_else(|e| e.into_inner());
    Json(
        orders
            .values()
            .filter(|o| o.user_id == user)
            .cloned()
            .collect(),
    )
}

struct Ledger {
    counters: Arc<Counters>,
    next_id: AtomicU64,
    payments: Mutex<Vec<Payment>>,
}

/// payment-service: charges orders and lists recent charges.
pub(crate) async fn payment_service(
    id: &str,
    registry: &RegistryAccess,
    counters: Arc<Counters>,
) -> Result<ServiceProcess, Error> {
    start_service("payment-service", id, registry, move |_sdk| {
        let ledger = Arc::new(Ledger {
            counters,
            next_id: AtomicU64::new(1),
            payments: Mutex::new(Vec::new()),
        });
        Router::new()
            .route("/payments", post(charge))
            .route("/payments/recent", get(recent))
            .with_state(ledger)
    })
    .await
}

/// Never returns while payment-service is stalled.
async fn unless_stalled(ledger: &Ledger) {
    if ledger.counters.payments_stalled.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

async fn charge(
    State(ledger): State<Arc<Ledger>>,
    Json(new): Json<NewPayment>,
) -> (StatusCode, Json<Payment>) {
    unless_stalled(&ledger).await;
    ledger.counters.payment_posts.fetch_add(1, Ordering::SeqCst);
    let payment = Payment {
        id: ledger.next_id.fetch_add(1, Ordering::SeqCst),
        order_id: new.order_id,
        amount_cents: new.amount_cents,
    };
    ledger
        .payments
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(payment.clone());
    (StatusCode::CREATED, Json(payment))
}

async fn recent(State(ledger): State<Arc<Ledger>>) -> Json<Vec<Payment>> {
    unless_stalled(&ledger).await;
    let payments = ledger.payments.lock().unwrap_or_else(|e| e.into_inner());
    Json(payments.iter().rev().take(10).cloned().collect())
}
