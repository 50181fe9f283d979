//! The slow-instance scenario: four instances, one slower, and the balancer's tail latency.

use std::time::{Duration, Instant};

use axum::{routing::get, Router};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    retry::RetryConfig,
    ServiceConfig, ServiceSdk,
};

/// Callers of the slow-instance scenario.
pub const SLOW_CALLERS: usize = 16;
/// Calls each caller makes.
pub const SLOW_CALLS_PER_CALLER: usize = 250;

/// Starts one loopback instance per entry, answering `1` on `/` after that many ms.
pub fn start_instances(delays_ms: &[u64]) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let delays = delays_ms.to_vec();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            for delay in delays {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(format!("http://{}", listener.local_addr().expect("addr")))
                    .expect("send");
                let app = Router::new().route(
                    "/",
                    get(move || async move {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        "1"
                    }),
                );
                tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
            }
            std::future::pending::<()>().await;
        });
    });
    (0..delays_ms.len())
        .map(|_| rx.recv().expect("url"))
        .collect()
}

/// p50 and p99 of calls over `urls` balanced by `strategy`.
pub async fn slow_instance_p99(urls: &[String], strategy: Strategy) -> (Duration, Duration) {
    let mut config = ServiceConfig::new()
        .retry(RetryConfig::new().max_attempts(1))
        .load_balancer(LoadBalancerConfig::new().strategy(strategy));
    for url in urls {
        config = config.instance(url);
    }
    let sdk = ServiceSdk::builder()
        .service("svc", config)
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    let tasks: Vec<_> = (0..SLOW_CALLERS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(SLOW_CALLS_PER_CALLER);
                for _ in 0..SLOW_CALLS_PER_CALLER {
                    let started = Instant::now();
                    client.get("/").send::<u32>().await.expect("ok");
                    times.push(started.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.expect("task"));
    }
    times.sort_unstable();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}
