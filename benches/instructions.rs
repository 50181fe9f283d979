//! Client instructions per call, for `valgrind --tool=callgrind` (see `benches/callgrind.sh`).
//!
//! `instructions serve` runs the JSON server and prints its URL; `instructions MODE N URL`
//! makes 200 warm-up calls and then N sequential calls of MODE (`hyper`, `reqwest`, `sdk`, `sdk-typed`,
//! `sdk-cached`, `sdk-typed-cached`, `sdk-open`, `middleware`, `feign`, `sdk-discovered` (the
//! instance found through the embedded registry), `sdk-versioned` (the same with a version
//! requirement), and `sdk-typed-metrics`: `sdk-typed` with the Prometheus recorder installed) on
//! a current-thread runtime. `instructions msg TRANSPORT OP N` makes N messaging operations
//! (`sdk-send`, `raw-send`, `sdk-emit`, `raw-emit`, `raw-emit-alike`, `raw-send-alike` on `nats`, `rabbitmq`,
//! `redis` or `nestjs-nats`; see `messaging.rs`), `msg-bench` runs the suite's messaging section alone, and
//! `msg-cpu TRANSPORT OP N BROKER_PID` prints the CPU time per operation of this process and
//! of the broker's. `feign` always
//! calls `common::FIXED_ADDR` (feignhttp's URL is fixed at compile time); `serve-fixed` serves
//! there. Running it for N and 2N calls and
//! dividing the difference by N cancels start-up and warm-up. Every run also prints the
//! allocations per call of its N measured calls (on stderr: `allocations per call: X`), from
//! a counting global allocator.

mod common;
mod messaging;

use common::Clients;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

// Every allocation is counted (two relaxed atomic adds each, in every mode alike), so a run
// prints allocations per call beside the instructions callgrind counts.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Prints the allocations per operation made since `region` began, over `n` operations.
fn print_allocations(region: &Region<'_, std::alloc::System>, n: usize) {
    let change = region.change();
    let per = (change.allocations + change.reallocations) as f64 / n as f64;
    eprintln!("allocations per call: {per:.1}");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.as_slice() {
        [serve] if serve == "serve" || serve == "serve-fixed" => rt.block_on(async {
            let addr = if serve == "serve" {
                "127.0.0.1:0"
            } else {
                common::FIXED_ADDR
            };
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            println!("http://{}", listener.local_addr().expect("addr"));
            axum::serve(listener, common::app()).await.expect("serve");
        }),
        // `msg-bench`: the suite's messaging measurements alone, printed (to try a change
        // without the whole suite).
        [bench] if bench == "msg-bench" => {
            let rt = two_workers();
            for row in rt.block_on(messaging::run(std::env::var_os("BENCH_QUICK").is_some())) {
                println!("{}", row.summary());
            }
        }
        // `msg-cpu TRANSPORT OP N PID`: N operations 64 at once; prints the wall time and
        // the CPU time of this process and of process PID (the broker) per operation.
        [m, transport, which, n, pid] if m == "msg-cpu" => msg_cpu(transport, which, n, pid),
        // `msg TRANSPORT OP N`: N messaging operations (OP: sdk-send, raw-send, sdk-emit,
        // raw-emit), the handler of a send in this process too: a round trip's cost on
        // both ends.
        [msg, transport, which, n] if msg == "msg" => {
            let n: usize = n.parse().expect("N is a number");
            rt.block_on(async {
                let ops = messaging::ops(transport).await.expect("the broker is here");
                let op = ops.get(which).expect("an operation").clone();
                for _ in 0..200 {
                    op().await;
                }
                let region = Region::new(GLOBAL);
                for _ in 0..n {
                    op().await;
                }
                print_allocations(&region, n);
                drop(ops);
            });
        }
        [mode, n, url] => rt.block_on(client_calls(mode, n, url)),
        // `cargo bench` runs every bench target; with no arguments there is nothing to do.
        _ => eprintln!(
            "usage: instructions serve | instructions MODE N URL (see benches/callgrind.sh)"
        ),
    }
}

/// `msg-cpu TRANSPORT OP N PID`: N operations 64 at once; prints the wall time and the CPU
/// time of this process and of process PID (the broker) per operation.
fn msg_cpu(transport: &str, which: &str, n: &str, pid: &str) {
    let n: usize = n.parse().expect("N is a number");
    let rt = two_workers();
    rt.block_on(async {
            let ops = messaging::ops(transport).await.expect("the broker is here");
            let op = ops.get(which).expect("an operation").clone();
            messaging::throughput(&op, 2_000).await;
            let (me, broker) = (cpu("self"), cpu(pid));
            let started = std::time::Instant::now();
            let rate = messaging::throughput(&op, n).await;
            let wall = started.elapsed().as_secs_f64() * 1e6 / n as f64;
            let per = |a: f64, b: f64| (b - a) * 1e6 / n as f64;
            println!(
                "{transport} {which}: {rate:.0}/s, {wall:.1} µs wall, CPU per op: here {:.1} µs, broker {:.1} µs",
                per(me, cpu("self")),
                per(broker, cpu(pid))
            );
            drop(ops);
        });
}

/// `MODE N URL`: 200 calls, then N more, of one client mode.
async fn client_calls(mode: &str, n: &str, url: &str) {
    let n: usize = n.parse().expect("N is a number");
    let prometheus = (mode == "sdk-typed-metrics")
        .then(|| sdk::telemetry::Prometheus::install().expect("recorder"));
    let mode = if prometheus.is_some() {
        "sdk-typed"
    } else {
        mode
    };
    let clients = Clients::new(url).await;
    for _ in 0..200 {
        one_call(&clients, mode).await;
    }
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        one_call(&clients, mode).await;
    }
    print_allocations(&region, n);
}

/// One call of `mode`'s client, its answer kept from the optimizer.
async fn one_call(clients: &Clients, mode: &str) {
    match mode {
        "hyper" => drop(std::hint::black_box(clients.hyper_call().await)),
        "reqwest" => drop(std::hint::black_box(clients.reqwest_call().await)),
        "sdk" => drop(std::hint::black_box(clients.sdk_call().await)),
        "sdk-typed" => drop(std::hint::black_box(clients.typed_call().await)),
        "sdk-cached" => drop(std::hint::black_box(clients.sdk_cached_call().await)),
        "sdk-typed-cached" => drop(std::hint::black_box(clients.typed_cached_call().await)),
        "sdk-open" => drop(std::hint::black_box(clients.sdk_open_call().await)),
        "middleware" => drop(std::hint::black_box(clients.middleware_call().await)),
        "feign" => drop(std::hint::black_box(clients.feign_call().await)),
        "sdk-discovered" => drop(std::hint::black_box(clients.sdk_discovered_call().await)),
        "sdk-versioned" => drop(std::hint::black_box(clients.sdk_versioned_call().await)),
        other => panic!("unknown mode {other}"),
    }
}

/// CPU seconds (user + system) of process `pid` (`self` for this one), from /proc.
fn cpu(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A runtime like the suite's: two worker threads, as the machine has two cores.
fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
