//! The registry server under a fleet: 1,000 instances (ten services of 100) register through
//! the SDK and heartbeat every second against a 3 s TTL, while clients keep resolving them.
//! The server is killed with SIGKILL and started again on the same port, and no
//! registration may be lost: the snapshot brings every instance back, and heartbeats keep
//! them all alive past several TTLs.
#![cfg(feature = "server")]

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::support::{data_file, start_server};
use sdk::ServiceSdk;
use sdk_registry::{HttpBackend, RegistryBackend, ServiceInstance};

const SERVICES: usize = 10;
const PER_SERVICE: usize = 100;
const TTL_SECS: u64 = 3;

/// Every service's instance count, as the registry lists them now.
async fn counts(backend: &HttpBackend) -> Vec<usize> {
    let mut counts = Vec::new();
    for s in 0..SERVICES {
        let listed = backend
            .instances(&format!("svc-{s}"))
            .await
            .expect("the registry answers");
        counts.push(listed.len());
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_heartbeating_instances_survive_a_restart() {
    let data = data_file("soak");
    let mut server = start_server(&data, TTL_SECS, "127.0.0.1:0", &[]).await;
    let addr = server.addr.clone();
    let backend = HttpBackend::new(&server.url, Some("s3cret".into())).expect("url");
    let sdk = ServiceSdk::builder()
        .registry(backend.clone())
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .expect("valid");

    // Register the fleet, 50 at a time.
    let mut registrations = Vec::new();
    for chunk in 0..(SERVICES * PER_SERVICE) / 50 {
        let batch = (0..50).map(|k| {
            let i = chunk * 50 + k;
            let instance = ServiceInstance::new(
                format!("svc-{}", i % SERVICES),
                ("10.0.0.1", u16::try_from(1000 + i).expect("port")),
            )
            .with_id(format!("i-{i}"));
            let sdk = sdk.clone();
            async move { sdk.register_current_service(instance).await }
        });
        for registration in futures_util::future::join_all(batch).await {
            registrations.push(registration.expect("registered"));
        }
    }
    assert_eq!(counts(&backend).await, [PER_SERVICE; SERVICES]);

    // Clients resolving throughout; failures are expected only while the server is down.
    let stop = Arc::new(AtomicBool::new(false));
    let (lookups, short) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let resolvers: Vec<_> = (0..4)
        .map(|r| {
            let (backend, stop) = (backend.clone(), stop.clone());
            let (lookups, short) = (lookups.clone(), short.clone());
            tokio::spawn(async move {
                let mut n = r;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(listed) = backend.instances(&format!("svc-{}", n % SERVICES)).await {
                        lookups.fetch_add(1, Ordering::Relaxed);
                        if listed.len() != PER_SERVICE {
                            short.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().await.expect("SIGKILL");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _server = start_server(&data, TTL_SECS, &addr, &[]).await;
    assert_eq!(
        counts(&backend).await,
        [PER_SERVICE; SERVICES],
        "the snapshot brought every registration back"
    );

    // Several TTLs later, heartbeats (resumed against the new process) keep all of them.
    tokio::time::sleep(Duration::from_secs(3 * TTL_SECS)).await;
    assert_eq!(
        counts(&backend).await,
        [PER_SERVICE; SERVICES],
        "no instance expired after the restart"
    );
    stop.store(true, Ordering::Relaxed);
    for resolver in resolvers {
        resolver.await.expect("no resolver panicked");
    }
    let lookups = lookups.load(Ordering::Relaxed);
    assert!(lookups > 100, "the resolvers kept resolving: {lookups}");
    assert_eq!(
        short.load(Ordering::Relaxed),
        0,
        "no lookup ever saw a service with an instance missing"
    );

    // Deregistration on the way out: the registry empties.
    for registration in registrations {
        registration.deregister().await.expect("deregistered");
    }
    assert_eq!(counts(&backend).await, [0; SERVICES]);
}
