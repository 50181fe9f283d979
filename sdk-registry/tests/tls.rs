//! The registry clients over HTTPS (rustls): the registry server's router behind TLS, with
//! a private certificate the client is told to trust.
#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use sdk_registry::{
    server::{router, Registry, ServerConfig},
    HttpBackend, RegistryBackend, RegistryError, ServiceInstance,
};
use support::tls::{self_signed, serve_tls, trusting};

#[tokio::test]
async fn the_registry_over_https() {
    let identity = self_signed();
    let registry = Registry::open(ServerConfig {
        token: Some("s3cret".into()),
        ..ServerConfig::default()
    })
    .await
    .expect("registry");
    let port = serve_tls(router(registry), &identity).await;
    let url = format!("https://localhost:{port}");

    let backend = HttpBackend::with_tls(&url, Some("s3cret".into()), trusting(&identity.cert))
        .expect("an https URL");
    backend
        .register(ServiceInstance::new("orders", "o-1", "127.0.0.1", 8081))
        .await
        .expect("registered over https");
    let mut changes = backend.watch("orders").await.expect("watch");
    assert_eq!(changes.borrow_and_update().len(), 1);
    backend
        .register(ServiceInstance::new("orders", "o-2", "127.0.0.1", 8082))
        .await
        .expect("registered over https");
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the long poll answered over https")
        .expect("watching");
    assert_eq!(changes.borrow().len(), 2);

    // Mozilla's roots do not vouch for a private certificate: verification is on.
    let untrusting = HttpBackend::new(&url, Some("s3cret".into())).expect("an https URL");
    let err = untrusting.instances("orders").await.expect_err("untrusted");
    assert!(matches!(err, RegistryError::Unavailable(_)), "{err:?}");

    // An SDK configured with `registry_url` uses its `tls_config` for the registry too.
    let mut config = sdk::SdkConfig::new();
    config.registry_url = Some(url);
    let sdk = sdk::ServiceSdk::builder()
        .config(config)
        .tls_config(trusting(&identity.cert))
        .build()
        .expect("valid");
    let found = sdk.discover_services("orders").await.expect("over https");
    assert_eq!(found.len(), 2);
}
