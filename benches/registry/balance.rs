//! Load balancing and discovery, measured:
//!
//! 1. four instances, one 50 ms slower: p99 latency with peak-EWMA (p2c) against round
//!    robin, 16 concurrent callers;
//! 2. time from a registration change to another SDK routing by it, through the in-memory
//!    registry, the registry server and etcd (when `SDK_TEST_ETCD` names one).
//!
//! `SDK_TEST_ETCD=http://127.0.0.1:2379 cargo bench -p sdk-registry-benches --bench balance`

// The scenario the suite (`sdk-benches`) runs too.
#[allow(unreachable_pub)]
#[path = "../common/balance.rs"]
mod shared_balance;

use std::time::{Duration, Instant};

use sdk::{balance::Strategy, registry::ServiceInstance, ServiceSdk};
use shared_balance::{slow_instance_p99, start_instances, SLOW_CALLERS, SLOW_CALLS_PER_CALLER};

/// Rounds of register / deregister timed in [`propagation`].
const ROUNDS: usize = 20;

/// `registrar` registers and deregisters an instance; `caller`, another SDK on the same
/// registry (as another process would be), calls the service until its routing follows.
/// Returns the median and worst of each direction over [`ROUNDS`].
async fn propagation(registrar: &ServiceSdk, caller: &ServiceSdk, port: u16) -> [Duration; 4] {
    let client = caller.get_client("echo");
    let _ = client.get("/").send::<u32>().await; // starts following the service
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let instance =
            ServiceInstance::new("echo", ("127.0.0.1", port)).with_id(format!("e-{round}"));
        let started = Instant::now();
        let registration = registrar
            .register_current_service(instance)
            .await
            .expect("valid");
        while client.get("/").send::<u32>().await.is_err() {
            tokio::task::yield_now().await;
        }
        up.push(started.elapsed());
        let started = Instant::now();
        registration.deregister().await.expect("registered");
        while client.get("/").send::<u32>().await.is_ok() {
            tokio::task::yield_now().await;
        }
        down.push(started.elapsed());
    }
    up.sort_unstable();
    down.sort_unstable();
    [
        up[ROUNDS / 2],
        up[ROUNDS - 1],
        down[ROUNDS / 2],
        down[ROUNDS - 1],
    ]
}

/// The registry server, in this process, on a loopback port.
async fn registry_server() -> String {
    use sdk_registry::server::{router, Registry, ServerConfig};
    let registry = Registry::open(ServerConfig {
        open_writes: true,
        ..ServerConfig::default()
    })
    .await
    .expect("registry");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, router(registry))
            .await
            .expect("serve")
    });
    url
}

async fn propagation_table(port: u16) {
    println!("\nregistration change to another SDK routing by it ({ROUNDS} rounds; target < 1 s):");
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10}",
        "registry", "reg p50", "reg max", "dereg p50", "dereg max"
    );
    let row = |name: &str, t: [Duration; 4]| {
        println!(
            "{name:<34} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?}",
            t[0], t[1], t[2], t[3]
        );
    };

    let embedded = ServiceSdk::builder().build().expect("defaults");
    row(
        "in-memory (one SDK)",
        propagation(&embedded, &embedded, port).await,
    );

    let url = registry_server().await;
    let sdk_on = |backend: sdk_registry::HttpBackend| {
        ServiceSdk::builder()
            .registry(backend)
            .build()
            .expect("valid")
    };
    let backend = sdk_registry::HttpBackend::new(&url, None).expect("url");
    let (registrar, caller) = (sdk_on(backend.clone()), sdk_on(backend));
    row(
        "sdk-registry server (long poll)",
        propagation(&registrar, &caller, port).await,
    );

    match std::env::var("SDK_TEST_ETCD") {
        Ok(endpoint) => {
            let prefix = format!("/sdk-bench/{}/", std::process::id());
            let etcd = sdk_registry::EtcdBackend::new(&[endpoint])
                .expect("endpoint")
                .with_prefix(&prefix);
            let sdk_on = |etcd: sdk_registry::EtcdBackend| {
                ServiceSdk::builder().registry(etcd).build().expect("valid")
            };
            let (registrar, caller) = (sdk_on(etcd.clone()), sdk_on(etcd));
            row("etcd (watch)", propagation(&registrar, &caller, port).await);
        }
        Err(_) => println!("etcd: skipped (set SDK_TEST_ETCD=http://host:port to include it)"),
    }
}

fn main() {
    let urls = start_instances(&[0, 0, 0, 50]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (rr_p50, rr_p99) = slow_instance_p99(&urls, Strategy::RoundRobin).await;
        let (p2c_p50, p2c_p99) = slow_instance_p99(&urls, Strategy::PowerOfTwoChoices).await;
        println!(
            "\nfour instances, one 50 ms slower; {SLOW_CALLERS} callers x {SLOW_CALLS_PER_CALLER} calls"
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
        let port: u16 = start_instances(&[0])[0]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        propagation_table(port).await;
    });
}
