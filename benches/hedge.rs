//! Hedged requests against a heavy tail: four loopback instances, one of which answers 5 %
//! of its requests 50 ms late. Each round runs the same calls without hedging and with
//! `hedge(after = "p95", max = 1)`, under both balancers, and reports p50, p99, p99.9 and
//! the upstream requests per call. Writes the "Hedged requests" section of
//! docs/benchmarks.md.
//!
//! `cargo bench -p sdk-benches --bench hedge`

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{extract::State, routing::get, Router};
use futures_util::{stream, StreamExt as _};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    hedge::HedgeConfig,
    ServiceConfig, ServiceSdk,
};

#[path = "common/report.rs"]
mod report;

const INSTANCES: usize = 4;
/// The share of the tail instance's answers that are late, and by how much.
const LATE_SHARE: f64 = 0.05;
const LATE_BY: Duration = Duration::from_millis(50);
const CALLERS: usize = 8;
const CALLS: usize = 20_000;
const WARMUP: usize = 2_000;
const ROUNDS: usize = 3;

/// Starts the instances on a runtime of their own; returns their URLs and request counters.
fn start_instances() -> Vec<(String, Arc<AtomicUsize>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            for index in 0..INSTANCES {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let hits = Arc::new(AtomicUsize::new(0));
                let url = format!("http://{}", listener.local_addr().expect("addr"));
                tx.send((url, hits.clone())).expect("send");
                let tail = index == INSTANCES - 1;
                let app = Router::new()
                    .route("/item", get(answer))
                    .with_state((hits, tail));
                tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
            }
            std::future::pending::<()>().await;
        });
    });
    (0..INSTANCES).map(|_| rx.recv().expect("url")).collect()
}

async fn answer(State((hits, tail)): State<(Arc<AtomicUsize>, bool)>) -> &'static str {
    hits.fetch_add(1, Ordering::Relaxed);
    if tail && fastrand::f64() < LATE_SHARE {
        tokio::time::sleep(LATE_BY).await;
    }
    r#"{"id":1}"#
}

fn sdk(urls: &[String], strategy: Strategy, hedge: bool) -> ServiceSdk {
    let mut config =
        ServiceConfig::new().load_balancer(LoadBalancerConfig::new().strategy(strategy));
    if hedge {
        config = config.hedge(HedgeConfig::new());
    }
    for url in urls {
        config = config.instance(url);
    }
    ServiceSdk::builder()
        .service("svc", config)
        .build()
        .expect("sdk")
}

/// The latencies of `calls` calls made by `CALLERS` concurrent callers.
async fn run(sdk: &ServiceSdk, calls: usize) -> Vec<Duration> {
    let client = sdk.get_client("svc");
    let mut latencies: Vec<Duration> = stream::iter(0..calls)
        .map(|_| {
            let client = client.clone();
            async move {
                let started = Instant::now();
                let response = client.get("/item").response().await;
                assert!(response.is_ok(), "{response:?}");
                started.elapsed()
            }
        })
        .buffer_unordered(CALLERS)
        .collect()
        .await;
    latencies.sort();
    latencies
}

fn at(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Measured {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    requests_per_call: f64,
}

async fn measure(instances: &[(String, Arc<AtomicUsize>)], sdk: &ServiceSdk) -> Measured {
    let sent = || -> usize {
        instances
            .iter()
            .map(|(_, h)| h.load(Ordering::Relaxed))
            .sum()
    };
    let before = sent();
    let latencies = run(sdk, CALLS).await;
    let requests = sent() - before;
    Measured {
        p50: at(&latencies, 50.0),
        p99: at(&latencies, 99.0),
        p999: at(&latencies, 99.9),
        requests_per_call: requests as f64 / CALLS as f64,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn bench() -> String {
    let instances = start_instances();
    let urls: Vec<String> = instances.iter().map(|(u, _)| u.clone()).collect();
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for (strategy, name) in [
        (Strategy::PowerOfTwoChoices, "p2c + peak EWMA (default)"),
        (Strategy::RoundRobin, "round robin"),
    ] {
        let (plain, hedged) = (sdk(&urls, strategy, false), sdk(&urls, strategy, true));
        run(&plain, WARMUP).await;
        run(&hedged, WARMUP).await;
        let (mut p99s, mut extra) = ((Vec::new(), Vec::new()), Vec::new());
        for round in 1..=ROUNDS {
            for (label, sdk) in [("without hedging", &plain), ("hedge after p95", &hedged)] {
                let m = measure(&instances, sdk).await;
                eprintln!("{name} round {round} {label}: p50 {:?} p99 {:?} p99.9 {:?} {:.4} requests/call", m.p50, m.p99, m.p999, m.requests_per_call);
                rows.push(format!(
                    "| {name} | {round} | {label} | {} | {} | {} | {:.3} |",
                    ms(m.p50),
                    ms(m.p99),
                    ms(m.p999),
                    m.requests_per_call
                ));
                if label == "without hedging" {
                    p99s.0.push(m.p99);
                } else {
                    p99s.1.push(m.p99);
                    extra.push(m.requests_per_call - 1.0);
                }
            }
        }
        let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len().max(1) as u32;
        let (without, with) = (mean(&p99s.0), mean(&p99s.1));
        let extra = extra.iter().sum::<f64>() / extra.len().max(1) as f64;
        summary.push(format!(
            "- {name}: p99 {} without hedging, {} with: **{:.1}x lower**, for **{:.1} % more upstream requests**.",
            ms(without),
            ms(with),
            without.as_secs_f64() / with.as_secs_f64().max(1e-9),
            extra * 100.0
        ));
    }
    format!(
        "## Hedged requests\n\nWritten by `cargo bench -p sdk-benches --bench hedge` (2 cores; commit {}). \
Four loopback instances; one answers {:.0} % of its requests {} ms late, the others at once. \
{CALLERS} concurrent callers make {CALLS} GETs per row, after {WARMUP} unmeasured calls per client; \
the two clients differ only in `hedge` (`after = \"p95\"`, `max = 1`, drawing from the default retry budget). \
Requests per call counts what the instances received.\n\n\
| balancer | round | client | p50 | p99 | p99.9 | requests per call |\n|---|---|---|---|---|---|---|\n{}\n\n{}\n",
        report::commit(),
        LATE_SHARE * 100.0,
        LATE_BY.as_millis(),
        rows.join("\n"),
        summary.join("\n"),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let section = runtime.block_on(bench());
    println!("{section}");
    let path = report::path();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    match std::fs::write(
        &path,
        report::with_section(&old, "## Hedged requests", &section),
    ) {
        Ok(()) => eprintln!("wrote the hedging section of {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
