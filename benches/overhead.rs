//! Call overhead: bare hyper-util, raw reqwest and the SDK in one run, against one server.
//!
//! `cargo bench -p sdk-benches --bench overhead` prints, per client: median and p99 latency for one caller,
//! throughput with 64 concurrent callers (1 s rounds, rotating order), and ratios to the baselines; then the cost of a
//! cached typed call and of an open-breaker rejection. Set `BENCH_SECS` to change the length
//! of each throughput run (default 3).

mod common;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{Clients, User};

const SAMPLES: usize = 20_000;
const CALLERS: usize = 64;

struct Latency {
    median: Duration,
    p99: Duration,
}

async fn latency<F, Fut, T>(samples: usize, mut call: F) -> Latency
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    for _ in 0..samples / 10 {
        std::hint::black_box(call().await);
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        std::hint::black_box(call().await);
        times.push(started.elapsed());
    }
    times.sort_unstable();
    Latency {
        median: times[samples / 2],
        p99: times[samples * 99 / 100],
    }
}

/// One-caller latency of the network clients, measured in turn call by call, with the order
/// rotated every round: drift on a noisy machine hits all alike, and no client always goes
/// first (the first call of a round pays for waking the server).
async fn interleaved(c: &Clients) -> [Latency; 4] {
    let mut times: [Vec<Duration>; 4] = Default::default();
    for i in 0..SAMPLES + SAMPLES / 10 {
        let mut round = [Duration::ZERO; 4];
        for position in 0..4 {
            let client = (i + position) % 4;
            let started = Instant::now();
            match client {
                0 => drop(std::hint::black_box(c.hyper_call().await)),
                1 => drop(std::hint::black_box(c.reqwest_call().await)),
                2 => drop(std::hint::black_box(c.sdk_call().await)),
                _ => drop(std::hint::black_box(c.typed_call().await)),
            }
            round[client] = started.elapsed();
        }
        if i >= SAMPLES / 10 {
            for (series, t) in times.iter_mut().zip(round) {
                series.push(t);
            }
        }
    }
    times.map(|mut series| {
        series.sort_unstable();
        Latency {
            median: series[series.len() / 2],
            p99: series[series.len() * 99 / 100],
        }
    })
}

async fn throughput<F, Fut>(clients: &Arc<Clients>, seconds: f64, call: F) -> f64
where
    F: Fn(Arc<Clients>) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = User> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (clients, stop, done) = (clients.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::black_box(call(clients.clone()).await);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Warm-up, then measure.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_count = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let calls = done.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    calls as f64 / elapsed
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let url = common::start_server_thread();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    rt.block_on(async move {
        let clients = Arc::new(Clients::new(&url).await);
        let expected = clients.hyper_call().await;
        assert_eq!(clients.reqwest_call().await, expected);
        assert_eq!(clients.sdk_call().await, expected);
        assert_eq!(clients.typed_call().await, expected);
        assert_eq!(clients.sdk_cached_call().await, expected);
        assert!(clients.sdk_open_call().await);
        assert_eq!(clients.typed_cached_call().await, expected);

        let c = clients.clone();
        let [hyper, reqwest, sdk, typed] = interleaved(&c).await;
        let cached = latency(SAMPLES / 4, || c.sdk_cached_call()).await;
        let open = latency(SAMPLES / 4, || c.sdk_open_call()).await;
        let typed_cached = latency(SAMPLES / 4, || c.typed_cached_call()).await;

        let hyper_tp = throughput(&clients, seconds, |c| async move { c.hyper_call().await }).await;
        let reqwest_tp =
            throughput(&clients, seconds, |c| async move { c.reqwest_call().await }).await;
        let sdk_tp = throughput(&clients, seconds, |c| async move { c.sdk_call().await }).await;
        let typed_tp = throughput(&clients, seconds, |c| async move { c.typed_call().await }).await;

        println!(
            "\none caller, typed GET of a small JSON object over loopback ({SAMPLES} calls each, interleaved in rotating order)"
        );
        println!(
            "{:<28} {:>10} {:>10} {:>14}",
            "client", "p50 µs", "p99 µs", "64 callers/s"
        );
        for (name, l, tp) in [
            ("bare hyper-util", &hyper, hyper_tp),
            ("raw reqwest", &reqwest, reqwest_tp),
            ("sdk (breaker+retry+timeouts)", &sdk, sdk_tp),
            ("sdk generated client", &typed, typed_tp),
        ] {
            println!(
                "{name:<28} {:>10.1} {:>10.1} {:>14.0}",
                us(l.median),
                us(l.p99),
                tp
            );
        }
        println!("\nratios");
        println!(
            "  sdk throughput / reqwest      {:.2}x (target >= 1.1x)",
            sdk_tp / reqwest_tp
        );
        println!("  sdk throughput / hyper-util   {:.2}x", sdk_tp / hyper_tp);
        println!(
            "  sdk p50 - hyper-util p50      {:+.1} µs (target <= 5 µs)",
            us(sdk.median) - us(hyper.median)
        );
        println!(
            "  generated p50 - ad-hoc p50     {:+.1} µs (target <= 1 µs)",
            us(typed.median) - us(sdk.median)
        );
        println!(
            "  reqwest p50 - hyper-util p50  {:+.1} µs",
            us(reqwest.median) - us(hyper.median)
        );
        println!("\nno network (batches of 100 calls per sample)");
        println!(
            "  cached typed call             p50 {:.0} ns, p99 {:.0} ns (target p50 < 1 µs)",
            cached.median.as_nanos(),
            cached.p99.as_nanos()
        );
        println!(
            "  generated cached call         p50 {:.0} ns ({:+.0} ns vs ad-hoc; target <= 1 µs)",
            typed_cached.median.as_nanos(),
            typed_cached.median.as_nanos() as f64 - cached.median.as_nanos() as f64
        );
        println!(
            "  open-breaker rejection        p50 {:.0} ns, p99 {:.0} ns (target p50 < 500 ns)",
            open.median.as_nanos(),
            open.p99.as_nanos()
        );
    });
}
