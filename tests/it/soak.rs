//! A soak under injected faults: 50,000 idempotent calls over four loopback instances that
//! answer 503 to 20 % of requests, stall 1 % past the attempt timeout and cut 1 % off in the
//! middle of the response, while one instance is killed and later restarted.
//!
//! Every call must end in success or a typed error, successes must stay above 99.9 %, and
//! when it is over the process must hold no more tasks or file descriptors than before.
//!
//! This file holds one test so that nothing else in its process moves the counts.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{body::Body, extract::State, http::StatusCode, response::Response, routing::get};
use bytes::Bytes;
use sdk::{
    balance::LoadBalancerConfig,
    circuit_breaker::{BreakerConfig, FailureRate},
    retry::{BudgetConfig, ExponentialBackoff, Jitter, RetryConfig},
    ServiceConfig, ServiceError, ServiceSdk,
};

const CALLS: u64 = 50_000;
const CALLERS: u64 = 64;
/// Each attempt's timeout: wide enough that 64 callers on two busy cores never reach it by
/// waiting for a CPU, only by a stall.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a stalled answer takes: well past the attempt timeout.
const STALL: Duration = Duration::from_secs(2);

/// What an instance does with its n-th request: a fixed pseudo-random schedule, so a run is
/// reproducible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    Unavailable,
    Stall,
    CutOff,
}

fn fault(instance: u64, n: u64) -> Fault {
    // splitmix64 of (instance, n): uniform enough to pick faults by rate.
    let mut z = (instance << 40 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    match (z ^ (z >> 31)) % 1000 {
        0..200 => Fault::Unavailable,
        200..210 => Fault::Stall,
        210..220 => Fault::CutOff,
        _ => Fault::None,
    }
}

struct Instance {
    id: u64,
    requests: AtomicU64,
}

async fn handle(State(instance): State<Arc<Instance>>) -> Response {
    let n = instance.requests.fetch_add(1, Ordering::Relaxed);
    let ok = || {
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(format!(
                "{{\"instance\":{},\"n\":{n}}}",
                instance.id
            )))
            .unwrap_or_default()
    };
    match fault(instance.id, n) {
        Fault::None => ok(),
        Fault::Unavailable => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Body::empty())
            .unwrap_or_default(),
        Fault::Stall => {
            tokio::time::sleep(STALL).await;
            ok()
        }
        Fault::CutOff => {
            // Half a body, then the connection is torn down.
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"instance\":")),
                Err(std::io::Error::other("connection cut")),
            ];
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap_or_default()
        }
    }
}

/// One instance on a runtime of its own, so killing it ends its connections too.
struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    state: Arc<Instance>,
    port: u16,
}

impl Server {
    fn start(id: u64, port: u16) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let state = Arc::new(Instance {
            id,
            requests: AtomicU64::new(0),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let app = axum::Router::new()
            .route("/item", get(handle))
            .with_state(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Server {
            runtime: Some(runtime),
            state,
            port,
        }
    }

    /// Dead at once: listener and connections gone, as after a crash.
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (up to 10 s) until `f` drops to `baseline`, and returns its last value.
async fn settles(baseline: usize, f: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = f();
        if now <= baseline || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What kind of error, without the details that differ call to call.
fn kind(err: &ServiceError) -> String {
    let class = |e: &ServiceError| match e {
        ServiceError::Status { status, .. } => format!("HTTP {}", status.as_u16()),
        ServiceError::Timeout { kind, .. } => format!("{kind:?} timeout"),
        ServiceError::Transport { connect: true, .. } => "could not connect".to_owned(),
        ServiceError::Transport { .. } => "transport".to_owned(),
        ServiceError::CircuitOpen { .. } => "circuit open".to_owned(),
        other => format!("{other}"),
    };
    match err {
        ServiceError::RetriesExhausted { stop, last, .. } => {
            format!("{stop}, last: {}", class(last))
        }
        other => class(other),
    }
}

/// Six attempts within 10 s, a budget that covers the fifth of attempts failing by
/// design, a breaker that opens on a majority of failures only, quick readmission.
fn soak_config(ports: &[u16]) -> ServiceConfig {
    let mut config = ServiceConfig::new()
        .timeout(Duration::from_secs(10))
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .retry(
            RetryConfig::new()
                .max_attempts(6)
                .backoff(
                    ExponentialBackoff::new(Duration::from_millis(2), Duration::from_millis(50))
                        .multiplier(2.0)
                        .jitter(Jitter::Full),
                )
                // A fifth of all attempts fail here by design: the budget must cover that.
                .budget(BudgetConfig::new().ratio(1.0)),
        )
        .circuit_breaker(
            BreakerConfig::new()
                // Open on a majority of failures, not on the 20 % this soak injects.
                .failure_threshold(u32::MAX)
                .failure_rate(FailureRate::new(0.6).window(200).min_calls(100)),
        )
        .load_balancer(LoadBalancerConfig::new().ejection_duration(Duration::from_millis(500)));
    for port in ports {
        config = config.instance(format!("http://127.0.0.1:{port}"));
    }
    config
}

type Tally = (u64, BTreeMap<String, u64>);

/// [`CALLERS`] callers taking calls from `next` until [`CALLS`] are taken, each counting
/// its successes and its errors by kind.
fn spawn_callers(
    client: &sdk::ServiceClient,
    next: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..CALLERS)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                while next.fetch_add(1, Ordering::Relaxed) < CALLS {
                    match client.get("/item").send::<serde_json::Value>().await {
                        Ok(_) => ok += 1,
                        Err(e) => *errors.entry(kind(&e)).or_default() += 1,
                    }
                }
                (ok, errors)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_calls_through_faults_and_a_restart() {
    let fds_before = open_fds();
    let tasks_before = alive_tasks();

    // Servers start off the test's runtime threads (their runtimes block_on to bind).
    let mut servers =
        tokio::task::spawn_blocking(|| (0..4).map(|id| Server::start(id, 0)).collect::<Vec<_>>())
            .await
            .expect("servers");
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let sdk = ServiceSdk::builder()
        .service("soak", soak_config(&ports))
        .build()
        .expect("valid");
    let client = sdk.get_client("soak");

    let next = Arc::new(AtomicU64::new(0));
    let callers = spawn_callers(&client, &next);
    // Kill instance 3 at 40 % of the calls and bring it back, on the same port, at 60 %.
    let port = servers[3].port;
    while next.load(Ordering::Relaxed) < CALLS * 2 / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    servers[3].kill();
    while next.load(Ordering::Relaxed) < CALLS * 3 / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    servers[3] = tokio::task::spawn_blocking(move || Server::start(3, port))
        .await
        .expect("restart");

    let mut ok = 0;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for caller in callers {
        let (caller_ok, caller_errors) = caller.await.expect("no caller panicked");
        ok += caller_ok;
        for (kind, n) in caller_errors {
            *errors.entry(kind).or_default() += n;
        }
    }
    let failed: u64 = errors.values().sum();
    let requests: Vec<u64> = servers
        .iter()
        .map(|s| s.state.requests.load(Ordering::Relaxed))
        .collect();
    println!("ok {ok}, failed {failed}: {errors:#?}\nrequests per instance after the restart: {requests:?}");
    assert_eq!(ok + failed, CALLS, "every call ended");
    assert!(
        ok * 1000 > CALLS * 999,
        "success {ok} of {CALLS} is not above 99.9 %: {errors:#?}"
    );
    assert!(
        requests[3] > 0,
        "the restarted instance was readmitted and served again"
    );

    // Tear everything down: no task or socket may outlive it.
    drop(client);
    drop(sdk);
    drop(servers);
    let tasks_after = settles(tasks_before, alive_tasks).await;
    let fds_after = settles(fds_before, open_fds).await;
    assert!(
        tasks_after <= tasks_before,
        "tasks: {tasks_before} before, {tasks_after} after"
    );
    assert!(
        fds_after <= fds_before,
        "file descriptors: {fds_before} before, {fds_after} after"
    );
}
