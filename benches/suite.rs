//! The benchmark suite: every figure of `docs/benchmarks.md`, each against its baseline in
//! the same run, written as a markdown report with a latency CDF plot (`docs/latency-cdf.svg`).
//!
//! ```text
//! cargo bench -p sdk-benches --bench suite            # ~2 minutes; callgrind too when valgrind is installed
//! BENCH_QUICK=1 cargo bench -p sdk-benches --bench suite   # shorter runs, for trying it out
//! ```
//!
//! Sections: call overhead at 1 and 64 callers (bare hyper-util, raw reqwest, the SDK ad hoc
//! and generated, reqwest-middleware with reqwest-retry, feignhttp), client instructions per
//! call (callgrind), cache hit and open-breaker costs, tail latency with one slow instance of
//! four, retry amplification under a total outage, and `batch_call` of 1,000 calls against
//! `futures::join_all` over raw reqwest.

mod common;
mod messaging;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{
    balance::{slow_instance_p99, start_instances},
    percentile, Clients, User,
};
use sdk::{
    balance::Strategy,
    circuit_breaker::BreakerConfig,
    retry::{ExponentialBackoff, Jitter, RetryConfig},
    ServiceConfig, ServiceSdk,
};

/// The clients of the overhead comparison, in report order.
const CLIENTS: [&str; 6] = [
    "bare hyper-util",
    "raw reqwest",
    "SDK, ad hoc",
    "SDK, generated client",
    "reqwest-middleware + reqwest-retry",
    "feignhttp",
];
/// Their modes in `instructions.rs`.
const MODES: [&str; 6] = [
    "hyper",
    "reqwest",
    "sdk",
    "sdk-typed",
    "middleware",
    "feign",
];

type Call = Pin<Box<dyn Future<Output = User> + Send>>;

fn call(clients: &Arc<Clients>, which: usize) -> Call {
    let c = clients.clone();
    Box::pin(async move {
        match which {
            0 => c.hyper_call().await,
            1 => c.reqwest_call().await,
            2 => c.sdk_call().await,
            3 => c.typed_call().await,
            4 => c.middleware_call().await,
            _ => c.feign_call().await,
        }
    })
}

struct Settings {
    samples: usize,
    rounds: usize,
    round: Duration,
    callers: usize,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One caller: every client in turn, call by call, the order rotated each round.
async fn one_caller(clients: &Arc<Clients>, samples: usize) -> Vec<Vec<Duration>> {
    let n = CLIENTS.len();
    let mut times = vec![Vec::with_capacity(samples); n];
    for i in 0..samples + samples / 10 {
        for position in 0..n {
            let which = (i + position) % n;
            let started = Instant::now();
            std::hint::black_box(call(clients, which).await);
            if i >= samples / 10 {
                times[which].push(started.elapsed());
            }
        }
    }
    for series in &mut times {
        series.sort_unstable();
    }
    times
}

/// Many callers: each client gets `rounds` rounds of `round`, clients rotating; returns
/// calls per second and the sorted latencies of every call.
async fn many_callers(clients: &Arc<Clients>, s: &Settings) -> Vec<(f64, Vec<Duration>)> {
    let n = CLIENTS.len();
    let mut calls = vec![0u64; n];
    let mut elapsed = vec![Duration::ZERO; n];
    let mut latencies = vec![Vec::new(); n];
    for round in 0..s.rounds {
        for position in 0..n {
            let which = (round + position) % n;
            let stop = Arc::new(AtomicBool::new(false));
            let measuring = Arc::new(AtomicBool::new(false));
            let tasks: Vec<_> = (0..s.callers)
                .map(|_| {
                    let (clients, stop, measuring) =
                        (clients.clone(), stop.clone(), measuring.clone());
                    tokio::spawn(async move {
                        let mut times = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let started = Instant::now();
                            std::hint::black_box(call(&clients, which).await);
                            if measuring.load(Ordering::Relaxed) {
                                times.push(started.elapsed());
                            }
                        }
                        times
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(200)).await; // warm-up
            measuring.store(true, Ordering::Relaxed);
            let started = Instant::now();
            tokio::time::sleep(s.round).await;
            measuring.store(false, Ordering::Relaxed);
            elapsed[which] += started.elapsed();
            stop.store(true, Ordering::Relaxed);
            for task in tasks {
                let times = task.await.expect("caller");
                calls[which] += times.len() as u64;
                latencies[which].extend(times);
            }
        }
    }
    (0..n)
        .map(|i| {
            let mut l = std::mem::take(&mut latencies[i]);
            l.sort_unstable();
            (calls[i] as f64 / elapsed[i].as_secs_f64(), l)
        })
        .collect()
}

/// Median of `samples` timings of `batch` calls each, per call.
async fn per_call<F, Fut, T>(samples: usize, batch: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        let started = Instant::now();
        for _ in 0..batch {
            std::hint::black_box(f().await);
        }
        if i >= samples / 10 {
            times.push(started.elapsed() / batch as u32);
        }
    }
    times.sort_unstable();
    percentile(&times, 0.5)
}

/// Client instructions per call under callgrind, (I(2N) - I(N)) / N, for each mode; `None`
/// when valgrind or the `instructions` bench binary is missing.
fn instructions(modes: &[&str], n: usize) -> Option<BTreeMap<String, u64>> {
    let url = format!("http://{}", common::FIXED_ADDR);
    let runs: Vec<(String, Vec<String>)> = modes
        .iter()
        .map(|mode| ((*mode).to_owned(), vec![(*mode).to_owned(), url.clone()]))
        .collect();
    callgrind(&runs, n, 1)
}

/// Instructions per messaging operation, client and handler both in the process:
/// `TRANSPORT OP` → count, for each transport whose broker is here.
fn messaging_instructions(transports: &[(&str, &str)], n: usize) -> Option<BTreeMap<String, u64>> {
    let mut runs = Vec::new();
    for (name, key) in transports {
        let transport = (*key).to_owned();
        // A transport without a raw request or publish alike the SDK's (a foreign wire's)
        // has no count for it (see `messaging.rs`).
        for op in [
            "sdk-send",
            "raw-send",
            "raw-send-alike",
            "sdk-emit",
            "raw-emit",
            "raw-emit-alike",
        ] {
            runs.push((
                format!("{name} {op}"),
                vec!["msg".into(), transport.clone(), op.into()],
            ));
        }
    }
    callgrind(&runs, n, 0)
}

/// Runs the `instructions` binary under callgrind with each run's arguments and `N` (put
/// `n_at` places from their end) for N and 2N operations: (I(2N) - I(N)) / N per run.
fn callgrind(
    runs: &[(String, Vec<String>)],
    n: usize,
    n_at: usize,
) -> Option<BTreeMap<String, u64>> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return None;
    }
    // The `instructions` bench binary, built beside this one by `cargo bench`.
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let binary = std::fs::read_dir(&deps)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("instructions-") && !n.contains('.'))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())?;
    let count = |args: &[String], calls: usize| -> Option<u64> {
        let mut args = args.to_vec();
        let insert_at = args.len().saturating_sub(n_at);
        args.insert(insert_at, calls.to_string());
        let output = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&binary)
            .args(&args)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stderr);
        let line = text.lines().find(|l| l.contains("Collected :"))?;
        line.rsplit(' ').next()?.trim().parse().ok()
    };
    let mut per_call = BTreeMap::new();
    for (name, args) in runs {
        eprintln!("callgrind: {name}");
        // A run that does not count (an operation a transport has not) has no figure.
        if let (Some(a), Some(b)) = (count(args, n), count(args, 2 * n)) {
            per_call.insert(name.clone(), b.saturating_sub(a) / n as u64);
        }
    }
    Some(per_call)
}

/// A server that answers every request with 503, counting them.
async fn outage_server() -> (String, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/users/{id}",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, hits)
}

/// Upstream requests per call when every answer is 503: `calls` calls by 16 callers.
async fn amplification<F, Fut>(hits: &AtomicU64, calls: u64, f: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let before = hits.load(Ordering::Relaxed);
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        break;
                    }
                    f(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
    (hits.load(Ordering::Relaxed) - before) as f64 / calls as f64
}

fn outage_sdk(url: &str, breaker: bool) -> ServiceSdk {
    let mut config = ServiceConfig::new().instance(url).retry(
        RetryConfig::new().backoff(
            ExponentialBackoff::new(Duration::from_millis(1), Duration::from_millis(5))
                .multiplier(2.0)
                .jitter(Jitter::Full),
        ),
    );
    if !breaker {
        config = config.circuit_breaker(BreakerConfig::new().failure_threshold(u32::MAX));
    }
    ServiceSdk::builder()
        .service("outage", config)
        .build()
        .expect("valid")
}

/// Writes the latency CDFs of the one-caller runs as an SVG.
fn plot_cdf(path: &Path, series: &[(&str, &[Duration])]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let max_us = series
        .iter()
        .map(|(_, s)| us(percentile(s, 0.995)))
        .fold(0.0, f64::max)
        .max(1.0);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "One caller, typed GET over loopback: latency CDF",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_us, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (µs)")
        .y_desc("fraction of calls")
        .draw()?;
    let colors = [BLACK, BLUE, RED, MAGENTA, GREEN, CYAN];
    for ((name, samples), color) in series.iter().zip(colors) {
        let n = samples.len().max(1) as f64;
        let step = (samples.len() / 400).max(1);
        let points = samples
            .iter()
            .enumerate()
            .step_by(step)
            .map(|(i, d)| (us(*d).min(max_us), (i + 1) as f64 / n));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The messaging section: each transport's `send` and `emit` against its raw client.
fn messaging_report(
    w: &mut String,
    rows: &[messaging::Row],
    instr: Option<&BTreeMap<String, u64>>,
) {
    let _ = writeln!(
        w,
        "\n## Messaging: `send` and `emit` against the raw broker clients\n"
    );
    if rows.is_empty() {
        let _ = writeln!(
            w,
            "n/a: no broker (NATS 4222, RabbitMQ 5672, Redis 6379) on this machine."
        );
        return;
    }
    let _ = writeln!(w, "A 128-byte JSON payload. `send` round trip: one caller (interleaved call by call with the raw client), and 64 callers at once; the raw client is async-nats `request`, lapin over direct reply-to, and redis with a stream, a consumer group and a reply list. `emit`: 64 at once, each awaiting the broker's confirmation (JetStream ack, publisher confirm, `XADD`), against the raw client's confirmed publish. \"Raw publish alike\" is the raw client publishing what the SDK's carries and routed as the SDK routes it (NATS: a message id and a `traceparent` header; RabbitMQ: those, a topic exchange, a queue with `x-max-priority`, `mandatory`; Redis: those as fields of the entry, appended to a bound group's stream with `NOMKSTREAM`, with the read of the bindings' version that keeps a publisher's routes current in the same pipeline): the broker's price of those features, paid with or without the SDK.\n");
    let _ = writeln!(
        w,
        "| transport | send | SDK p50 | raw p50 | p50 ratio | SDK p99 | raw p99 | p99 ratio |"
    );
    let _ = writeln!(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        for (label, (sdk, raw)) in [("1 caller", &row.one), ("64 callers", &row.many)] {
            let (s50, r50) = (percentile(sdk, 0.5), percentile(raw, 0.5));
            let (s99, r99) = (percentile(sdk, 0.99), percentile(raw, 0.99));
            let _ = writeln!(
                w,
                "| {} | {label} | {:.0} µs | {:.0} µs | {:.2}x | {:.0} µs | {:.0} µs | {:.2}x |",
                row.transport,
                us(s50),
                us(r50),
                s50.as_secs_f64() / r50.as_secs_f64(),
                us(s99),
                us(r99),
                s99.as_secs_f64() / r99.as_secs_f64(),
            );
        }
    }
    let _ = writeln!(
        w,
        "\n`send`, 1 caller, against a raw request alike the SDK's, interleaved with the two above: carrying the SDK's request headers (message id, `traceparent`, deadline) and routed as the SDK routes it (NATS: a request with those headers; RabbitMQ: through a topic exchange, `mandatory` on a channel with publisher confirms, the confirm awaited, the deadline as the message's TTL; Redis: the SDK's check that the routes are current and a consumer is alive, and the capped append, in one script, those headers as fields).\n\n| transport | SDK p50 | raw alike p50 | ratio | SDK p99 | raw alike p99 | ratio |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        let Some(alike) = &row.one_alike else {
            continue;
        };
        let (s50, a50) = (percentile(&row.one.0, 0.5), percentile(alike, 0.5));
        let (s99, a99) = (percentile(&row.one.0, 0.99), percentile(alike, 0.99));
        let _ = writeln!(
            w,
            "| {} | {:.0} µs | {:.0} µs | {:.2}x | {:.0} µs | {:.0} µs | {:.2}x |",
            row.transport,
            us(s50),
            us(a50),
            s50.as_secs_f64() / a50.as_secs_f64(),
            us(s99),
            us(a99),
            s99.as_secs_f64() / a99.as_secs_f64(),
        );
    }
    messaging_emits_report(w, rows, instr);
}

/// The messaging section's `emit` throughput and instruction counts.
fn messaging_emits_report(
    w: &mut String,
    rows: &[messaging::Row],
    instr: Option<&BTreeMap<String, u64>>,
) {
    let _ = writeln!(
        w,
        "\n| transport | SDK emits/s | raw confirmed publishes/s | ratio | raw publish alike | ratio |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let (sdk, raw) = row.emits_per_second;
        let (alike, alike_ratio) = row.emits_alike.map_or(("n/a".into(), "n/a".into()), |w| {
            (format!("{w:.0}"), format!("{:.2}x", sdk / w))
        });
        let _ = writeln!(
            w,
            "| {} | {sdk:.0} | {raw:.0} | {:.2}x | {alike} | {alike_ratio} |",
            row.transport,
            sdk / raw
        );
    }
    let _ = writeln!(w, "\nInstructions per operation under callgrind ((I(2N) - I(N)) / N, N = 500, one process holding the caller and, for `send`, the handler: a round trip's cost on both ends; the broker's own work is not counted). \"Raw alike\" is the raw request or publish carrying what the SDK's carries and routed as it is routed, as above.\n");
    let _ = writeln!(
        w,
        "| transport | send: SDK | send: raw | ratio | send: raw alike | ratio | emit: SDK | emit: raw | ratio | emit: raw alike | ratio |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        let get = |op: &str| instr.and_then(|m| m.get(&format!("{} {op}", row.transport)).copied());
        let cell = |n: Option<u64>| n.map_or("n/a".into(), |n| n.to_string());
        let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}x", a as f64 / b as f64),
            _ => "n/a".into(),
        };
        let (ss, rs, sa, se, re, ra) = (
            get("sdk-send"),
            get("raw-send"),
            get("raw-send-alike"),
            get("sdk-emit"),
            get("raw-emit"),
            get("raw-emit-alike"),
        );
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.transport,
            cell(ss),
            cell(rs),
            ratio(ss, rs),
            cell(sa),
            ratio(ss, sa),
            cell(se),
            cell(re),
            ratio(se, re),
            cell(ra),
            ratio(se, ra)
        );
    }
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let commit = if dirty {
        format!("{commit} with uncommitted changes")
    } else {
        commit
    };
    format!("{cores} cores; commit {commit}; client, server and load generator on one machine")
}

/// Retry amplification: upstream requests per call under a total outage.
struct Amplification {
    calls: u64,
    naive: f64,
    sdk_budget: f64,
    sdk_default: f64,
}

async fn measure_amplification(quick: bool) -> Amplification {
    let (outage_url, hits) = outage_server().await;
    let calls = if quick { 500 } else { 2_000 };
    let mut sdk_rates = Vec::new();
    for breaker in [true, false] {
        let client = outage_sdk(&outage_url, breaker).get_client("outage");
        let rate = amplification(&hits, calls, move |i| {
            let client = client.clone();
            async move {
                let _ = client
                    .get(&format!("/users/{i}"))
                    .endpoint("/users/{id}")
                    .send::<User>()
                    .await;
            }
        })
        .await;
        sdk_rates.push(rate);
    }
    let naive = {
        let policy = reqwest_retry::policies::ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
            .build_with_max_retries(2);
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(
                policy,
            ))
            .build()
    };
    let naive = amplification(&hits, calls, move |i| {
        let (client, base) = (naive.clone(), outage_url.clone());
        async move {
            let _ = client.get(format!("{base}/users/{i}")).send().await;
        }
    })
    .await;
    Amplification {
        calls,
        naive,
        sdk_default: sdk_rates[0],
        sdk_budget: sdk_rates[1],
    }
}

/// Fan-out of 1,000 calls: `batch_call` against `join_all` over raw reqwest.
struct Fanout {
    batch_times: Vec<Duration>,
    join_times: Vec<Duration>,
    batch_failures: usize,
    join_failures: usize,
}

async fn measure_fanout(url: &str, quick: bool) -> Fanout {
    let sdk = ServiceSdk::builder()
        .service("users", ServiceConfig::new().instance(url))
        .build()
        .expect("valid");
    let users = sdk.get_client("users");
    let reqwest_client = reqwest::Client::new();
    let mut fanout = Fanout {
        batch_times: Vec::new(),
        join_times: Vec::new(),
        batch_failures: 0,
        join_failures: 0,
    };
    for _ in 0..if quick { 3 } else { 7 } {
        let started = Instant::now();
        let results = sdk
            .batch_call((0..1000u64).map(|i| {
                let users = users.clone();
                (format!("user-{i}"), async move {
                    users.get(&format!("/users/{i}")).send::<User>().await
                })
            }))
            .await;
        fanout.batch_times.push(started.elapsed());
        fanout.batch_failures += results.failed().count();

        let started = Instant::now();
        let results = futures_util::future::join_all((0..1000u64).map(|i| {
            let (client, url) = (reqwest_client.clone(), url.to_owned());
            async move {
                client
                    .get(format!("{url}/users/{i}"))
                    .send()
                    .await?
                    .json::<User>()
                    .await
            }
        }))
        .await;
        fanout.join_times.push(started.elapsed());
        fanout.join_failures += results.iter().filter(|r| r.is_err()).count();
    }
    fanout.batch_times.sort_unstable();
    fanout.join_times.sort_unstable();
    fanout
}

/// Everything the report shows.
struct Measured {
    one: Vec<Vec<Duration>>,
    many: Vec<(f64, Vec<Duration>)>,
    /// Cache hit (ad hoc, generated) and open-breaker rejection, per call.
    no_network: [Duration; 3],
    /// p50 and p99 with round robin, then with p2c.
    tail: [(Duration, Duration); 2],
    amplification: Amplification,
    fanout: Fanout,
    messaging: Vec<messaging::Row>,
    instr: Option<BTreeMap<String, u64>>,
    messaging_instr: Option<BTreeMap<String, u64>>,
}

async fn measure(url: &str, settings: &Settings, quick: bool) -> Measured {
    let clients = Arc::new(Clients::new(url).await);
    let expected = clients.hyper_call().await;
    for (which, name) in CLIENTS.iter().enumerate() {
        assert_eq!(call(&clients, which).await, expected, "{name}");
    }
    eprintln!("one caller...");
    let one = one_caller(&clients, settings.samples).await;
    eprintln!("64 callers...");
    let many = many_callers(&clients, settings).await;
    eprintln!("no network...");
    let no_network = [
        per_call(200, 100, || clients.sdk_cached_call()).await,
        per_call(200, 100, || clients.typed_cached_call()).await,
        per_call(200, 100, || clients.sdk_open_call()).await,
    ];
    eprintln!("one slow instance of four...");
    let urls = start_instances(&[0, 0, 0, 50]);
    let tail = [
        slow_instance_p99(&urls, Strategy::RoundRobin).await,
        slow_instance_p99(&urls, Strategy::PowerOfTwoChoices).await,
    ];
    eprintln!("retry amplification...");
    let amplification = measure_amplification(quick).await;
    eprintln!("batch of 1,000...");
    let fanout = measure_fanout(url, quick).await;
    let messaging = messaging::run(quick).await;
    eprintln!("callgrind (when valgrind is installed)...");
    let mut modes: Vec<&str> = MODES.to_vec();
    modes.extend(["sdk-cached", "sdk-typed-cached", "sdk-open"]);
    let n = if quick { 500 } else { 2_000 };
    let instr = tokio::task::spawn_blocking(move || instructions(&modes, n))
        .await
        .expect("callgrind");
    let transports: Vec<(&'static str, &'static str)> =
        messaging.iter().map(|r| (r.transport, r.key)).collect();
    let n = if quick { 200 } else { 500 };
    let messaging_instr =
        tokio::task::spawn_blocking(move || messaging_instructions(&transports, n))
            .await
            .expect("callgrind");
    Measured {
        one,
        many,
        no_network,
        tail,
        amplification,
        fanout,
        messaging,
        instr,
        messaging_instr,
    }
}

/// The call-overhead section: each client at one and 64 callers, and its instructions.
fn overhead_report(w: &mut String, m: &Measured, settings: &Settings) {
    let _ = writeln!(
        w,
        "## Call overhead: a typed GET of a small JSON object over loopback\n"
    );
    let _ = writeln!(
        w,
        "One caller: {} calls per client, interleaved call by call in rotating order. 64 callers: {} round(s) of {:?} per client, rotating. Throughput ratios are against raw reqwest; instructions against bare hyper-util.\n",
        settings.samples, settings.rounds, settings.round
    );
    let _ = writeln!(
        w,
        "| client | 1 caller p50 | 1 caller p99 | 64 callers: calls/s | vs reqwest | 64 callers p50 | 64 callers p99 | instructions/call | vs hyper-util |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let reqwest_tp = m.many[1].0;
    let hyper_instr = m.instr.as_ref().and_then(|i| i.get("hyper").copied());
    for (i, name) in CLIENTS.iter().enumerate() {
        let (tp, lat) = (&m.many[i].0, &m.many[i].1);
        let instructions = m.instr.as_ref().and_then(|n| n.get(MODES[i]).copied());
        let _ = writeln!(
            w,
            "| {name} | {:.1} µs | {:.1} µs | {:.0} | {:.2}x | {:.0} µs | {:.0} µs | {} | {} |",
            us(percentile(&m.one[i], 0.5)),
            us(percentile(&m.one[i], 0.99)),
            tp,
            tp / reqwest_tp,
            us(percentile(lat, 0.5)),
            us(percentile(lat, 0.99)),
            instructions.map_or("n/a".into(), |n| n.to_string()),
            match (instructions, hyper_instr) {
                (Some(n), Some(h)) if h > 0 => format!("{:.2}x", n as f64 / h as f64),
                _ => "n/a".into(),
            },
        );
    }
    let _ = writeln!(w, "\n![latency CDF, one caller](latency-cdf.svg)\n");
}

/// The sections on calls without the network, and the tail with one slow instance.
fn no_network_report(w: &mut String, m: &Measured) {
    let _ = writeln!(w, "## Without the network\n");
    let _ = writeln!(w, "Medians over 200 samples of 100 calls; the baseline is the same call over the network (bare hyper-util, one caller p50).\n");
    let _ = writeln!(
        w,
        "| call | per call | vs a network call | instructions/call |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: |");
    let network = percentile(&m.one[0], 0.5);
    let names = [
        ("cache hit, ad hoc (lookup + decode)", "sdk-cached"),
        ("cache hit, generated client", "sdk-typed-cached"),
        ("open-breaker rejection", "sdk-open"),
    ];
    for ((name, mode), t) in names.into_iter().zip(m.no_network) {
        let _ = writeln!(
            w,
            "| {name} | {} ns | {:.3}x | {} |",
            t.as_nanos(),
            t.as_secs_f64() / network.as_secs_f64(),
            m.instr
                .as_ref()
                .and_then(|i| i.get(mode).copied())
                .map_or("n/a".into(), |n| n.to_string()),
        );
    }
    let [(rr_p50, rr_p99), (p2c_p50, p2c_p99)] = m.tail;
    let _ = writeln!(w, "\n## Tail latency: four instances, one 50 ms slower\n");
    let _ = writeln!(w, "16 callers, 250 calls each, no retries.\n");
    let _ = writeln!(w, "| balancer | p50 | p99 | p99 vs round robin |");
    let _ = writeln!(w, "| --- | ---: | ---: | ---: |");
    let _ = writeln!(
        w,
        "| round robin | {:.2} ms | {:.2} ms | 1x |",
        rr_p50.as_secs_f64() * 1e3,
        rr_p99.as_secs_f64() * 1e3
    );
    let _ = writeln!(
        w,
        "| power of two choices, peak-EWMA (default) | {:.2} ms | {:.2} ms | {:.3}x |",
        p2c_p50.as_secs_f64() * 1e3,
        p2c_p99.as_secs_f64() * 1e3,
        p2c_p99.as_secs_f64() / rr_p99.as_secs_f64()
    );
}

/// The retry-amplification and fan-out sections.
fn failure_report(w: &mut String, a: &Amplification, f: &Fanout) {
    let _ = writeln!(w, "\n## Retry amplification under a total outage\n");
    let _ = writeln!(w, "Every answer is 503. {} calls from 16 callers, each allowed 3 attempts (the SDK calls name their endpoint, `/users/{{id}}`, as generated clients do); upstream requests per call.\n", a.calls);
    let _ = writeln!(w, "| client | requests per call |");
    let _ = writeln!(w, "| --- | ---: |");
    let _ = writeln!(
        w,
        "| naive retries (reqwest-retry, 2 retries) | {:.2} |",
        a.naive
    );
    let _ = writeln!(
        w,
        "| SDK, retry budget only (breaker off) | {:.2} |",
        a.sdk_budget
    );
    let _ = writeln!(
        w,
        "| SDK defaults (budget and breaker) | {:.2} |",
        a.sdk_default
    );
    let _ = writeln!(w, "\n## Fan-out: 1,000 calls\n");
    let _ = writeln!(
        w,
        "Medians of {} runs against the same server.\n",
        f.batch_times.len()
    );
    let _ = writeln!(w, "| fan-out | wall time | failed calls (all runs) |");
    let _ = writeln!(w, "| --- | ---: | ---: |");
    let _ = writeln!(
        w,
        "| `futures::join_all` over raw reqwest (1,000 at once) | {:.1} ms | {} |",
        percentile(&f.join_times, 0.5).as_secs_f64() * 1e3,
        f.join_failures
    );
    let _ = writeln!(
        w,
        "| `sdk.batch_call` (64 at once, result per call) | {:.1} ms | {} |",
        percentile(&f.batch_times, 0.5).as_secs_f64() * 1e3,
        f.batch_failures
    );
}

/// The whole report, from what was measured.
fn report(m: &Measured, settings: &Settings) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `cargo bench -p sdk-benches --bench suite` ({}). Every figure is measured against its baseline in the same run; ratios are the figures to compare across machines, and instruction counts (callgrind) are the ones that hold still on a noisy machine.\n",
        machine()
    );
    overhead_report(w, m, settings);
    no_network_report(w, m);
    failure_report(w, &m.amplification, &m.fanout);
    messaging_report(w, &m.messaging, m.messaging_instr.as_ref());
    if m.instr.is_none() {
        let _ = writeln!(w, "\nInstruction counts: n/a (valgrind is not installed).");
    }
    md
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let settings = Settings {
        samples: if quick { 1_000 } else { 5_000 },
        rounds: if quick { 1 } else { 3 },
        round: Duration::from_secs(1),
        callers: 64,
    };
    let url = common::start_server_thread_on(common::FIXED_ADDR);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let measured = rt.block_on(measure(&url, &settings, quick));
    let md = report(&measured, &settings);
    let series: Vec<(&str, &[Duration])> = CLIENTS
        .iter()
        .zip(&measured.one)
        .map(|(n, s)| (*n, s.as_slice()))
        .collect();
    let docs = docs_dir();
    let _ = std::fs::create_dir_all(&docs);
    if let Err(e) = plot_cdf(&docs.join("latency-cdf.svg"), &series) {
        eprintln!("could not draw the plot: {e}");
    }
    let path = docs_dir().join("benchmarks.md");
    // The event bus's section comes from its own bench: kept as it was.
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let md = common::report::keeping_own_sections(&old, &md);
    match std::fs::write(&path, &md) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
    println!("{md}");
}
