//! The registry server under read load: 10,000 registered instances (100 services of 100),
//! 64 concurrent callers looking up a service's instances over HTTP for a few seconds.
//!
//! `cargo bench -p sdk-benches --bench registry`

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use sdk_registry::{
    server::{router, Registry, ServerConfig},
    RegistryBackend, ServiceInstance,
};

const SERVICES: usize = 100;
const PER_SERVICE: usize = 100;
const CALLERS: usize = 64;

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let registry = Registry::open(ServerConfig { open_writes: true, ..ServerConfig::default() }).await.expect("registry");
        for s in 0..SERVICES {
            for i in 0..PER_SERVICE {
                let instance = ServiceInstance::new(format!("svc-{s}"), format!("i-{i}"), "10.0.0.1", 1000 + i as u16);
                registry.backend().register(instance).await.expect("valid");
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router(registry)).await.expect("serve") });

        let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    let mut n = caller;
                    while !stop.load(Ordering::Relaxed) {
                        let uri = format!("{url}/v1/services/svc-{}/instances", n % SERVICES).parse().expect("uri");
                        let started = Instant::now();
                        let response = client.get(uri).await.expect("answer");
                        let body = response.into_body().collect().await.expect("body").to_bytes();
                        assert!(body.len() > 1000);
                        times.push(started.elapsed());
                        n += CALLERS;
                    }
                    times
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut times = Vec::new();
        for task in tasks {
            times.extend(task.await.expect("task"));
        }
        times.sort_unstable();
        println!("\nregistry server, {} instances ({SERVICES} services x {PER_SERVICE}), {CALLERS} callers", SERVICES * PER_SERVICE);
        println!("  lookups/s  {:.0}", times.len() as f64 / seconds);
        println!("  p50        {:.2?}", times[times.len() / 2]);
        println!("  p99        {:.2?}", times[times.len() * 99 / 100]);
        println!("  (each lookup answers a service's 100 instances as JSON; server and callers share 2 cores)");
    });
}
