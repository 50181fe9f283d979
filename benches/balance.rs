//! Load balancing and discovery, measured:
//!
//! 1. four instances, one 50 ms slower: p99 latency with peak-EWMA (p2c) against round
//!    robin, 16 concurrent callers;
//! 2. time from a registration change to the client routing by it (in-memory registry,
//!    watch-driven).
//!
//! `cargo bench -p sdk-benches --bench balance`

use std::time::{Duration, Instant};

use axum::{routing::get, Router};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    registry::ServiceInstance,
    retry::RetryConfig,
    ServiceConfig, ServiceSdk,
};

const CALLERS: usize = 16;
const CALLS_PER_CALLER: usize = 250;

fn start_instances(delays_ms: &[u64]) -> Vec<String> {
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

async fn p99(urls: &[String], strategy: Strategy) -> (Duration, Duration) {
    let mut config = ServiceConfig::new()
        .retry(RetryConfig {
            max_attempts: 1,
            ..Default::default()
        })
        .load_balancer(LoadBalancerConfig {
            strategy,
            ..Default::default()
        });
    for url in urls {
        config = config.instance(url);
    }
    let sdk = ServiceSdk::builder()
        .service("svc", config)
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(CALLS_PER_CALLER);
                for _ in 0..CALLS_PER_CALLER {
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

async fn propagation() -> (Duration, Duration) {
    let urls = start_instances(&[0]);
    let port: u16 = urls[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let sdk = ServiceSdk::builder().build().expect("defaults");
    let client = sdk.get_client("echo");
    assert!(client.get("/").send::<u32>().await.is_err());
    let started = Instant::now();
    let registration = sdk
        .register_current_service(ServiceInstance::new("echo", "e-1", "127.0.0.1", port))
        .await
        .expect("valid");
    while client.get("/").send::<u32>().await.is_err() {
        tokio::task::yield_now().await;
    }
    let register = started.elapsed();
    let started = Instant::now();
    registration.deregister().await.expect("registered");
    while client.get("/").send::<u32>().await.is_ok() {
        tokio::task::yield_now().await;
    }
    (register, started.elapsed())
}

fn main() {
    let urls = start_instances(&[0, 0, 0, 50]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (rr_p50, rr_p99) = p99(&urls, Strategy::RoundRobin).await;
        let (p2c_p50, p2c_p99) = p99(&urls, Strategy::PowerOfTwoChoices).await;
        println!(
            "\nfour instances, one 50 ms slower; {CALLERS} callers x {CALLS_PER_CALLER} calls"
        );
        println!("{:<28} {:>12} {:>12}", "strategy", "p50", "p99");
        println!("{:<28} {:>12.2?} {:>12.2?}", "round robin", rr_p50, rr_p99);
        println!(
            "{:<28} {:>12.2?} {:>12.2?}",
            "p2c over peak-EWMA", p2c_p50, p2c_p99
        );
        println!(
            "p2c p99 / round robin p99: {:.3} (target <= 0.2)",
            p2c_p99.as_secs_f64() / rr_p99.as_secs_f64()
        );
        let (register, deregister) = propagation().await;
        println!("\nregistration change to routing (in-memory registry, watch):");
        println!("  registered   -> routed to it     {register:?} (target < 1 s)");
        println!("  deregistered -> no longer routed {deregister:?}");
    });
}
