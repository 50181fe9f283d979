//! The registry clients over HTTPS (rustls): the registry server's router behind TLS, with
//! a private certificate the client is told to trust.
#![cfg(feature = "server")]

use crate::support;

use std::time::Duration;

use crate::support::tls::{self_signed, serve_tls, trusting};
use sdk_registry::{
    server::{router, Registry, ServerConfig},
    HttpBackend, RegistryBackend, RegistryError, ServiceInstance,
};

/// A client trusting `identity` with instance `orders/o-1` registered through it.
async fn registered_over_https(url: &str, identity: &support::tls::SelfSigned) -> HttpBackend {
    let backend = HttpBackend::with_tls(url, Some("s3cret".into()), trusting(&identity.cert))
        .expect("an https URL");
    backend
        .register(ServiceInstance::new("orders", ("127.0.0.1", 8081)).with_id("o-1"))
        .await
        .expect("registered over https");
    backend
}

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

    let backend = registered_over_https(&url, &identity).await;
    let mut changes = backend.watch("orders").await.expect("watch");
    assert_eq!(changes.borrow_and_update().len(), 1);
    backend
        .register(ServiceInstance::new("orders", ("127.0.0.1", 8082)).with_id("o-2"))
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

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_binary_serves_https() {
    let identity = self_signed();
    let data = support::data_file("tls");
    let dir = data.parent().expect("temp dir").to_path_buf();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &identity.cert_pem).expect("write the certificate");
    std::fs::write(&key, &identity.key_pem).expect("write the key");
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let mut server = support::start_server(
        &data,
        90,
        "127.0.0.1:0",
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
    )
    .await;
    let port = server.addr.rsplit(':').next().expect("port");
    let url = format!("https://localhost:{port}");

    let backend = registered_over_https(&url, &identity).await;
    assert_eq!(backend.instances("orders").await.expect("listed").len(), 1);

    // Plain HTTP to the HTTPS port gets nowhere.
    let plain = HttpBackend::new(&server.url, None).expect("an http URL");
    assert!(plain.instances("orders").await.is_err());

    // SIGTERM: a graceful exit over TLS too.
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");

    // A key file that is not there stops the binary before it listens, naming the file.
    let missing = dir.join("missing-key.pem");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sdk-registry"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert_arg,
            "--tls-key",
        ])
        .arg(&missing)
        .output()
        .await
        .expect("run the binary");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing-key.pem"), "{stderr}");
}
