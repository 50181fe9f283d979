//! The etcd backend against a real etcd: `scripts/test` starts one and sets `SDK_TEST_ETCD`.
//! Without it these tests fail when `CI` is set and skip, saying why, elsewhere.
//!
//! Lease expiry runs on etcd's clock, so the expiry test waits a few real seconds (etcd's
//! shortest lease is about 2 s).

use crate::support;

use std::time::{Duration, Instant};

use sdk_registry::{EtcdBackend, HealthStatus, RegistryBackend, RegistryError, ServiceInstance};

/// The test etcd's endpoint, or `None` (after saying why) when there is none outside CI.
fn etcd_endpoint() -> Option<String> {
    match std::env::var("SDK_TEST_ETCD") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            sdk_test_support::skip(
                "SDK_TEST_ETCD is not set (scripts/test starts an etcd and sets it)",
            );
            None
        }
    }
}

/// A backend on the test etcd under a prefix no other test (or run) uses.
fn backend(test: &str) -> Option<EtcdBackend> {
    let endpoint = etcd_endpoint()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("/sdk-test/{test}-{}-{nanos}/", std::process::id());
    Some(
        EtcdBackend::new(&[endpoint])
            .expect("endpoint")
            .with_prefix(&prefix),
    )
}

fn instance(id: &str, port: u16) -> ServiceInstance {
    ServiceInstance::new("orders", ("127.0.0.1", port)).with_id(id)
}

fn ids<R: std::borrow::Borrow<sdk_registry::InstanceRecord>>(records: &[R]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r.borrow().instance.id.as_str())
        .collect()
}

/// Waits (up to 10 s) until the watched snapshot holds exactly `want`.
async fn watch_until(
    changes: &mut tokio::sync::watch::Receiver<sdk_registry::Snapshot>,
    want: &[&str],
    what: &str,
) {
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        while ids(&changes.borrow_and_update()) != want {
            changes.changed().await.expect("watching");
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{what}: still {:?}",
        ids(&changes.borrow())
    );
}

#[tokio::test]
async fn register_list_health_and_deregister() {
    let Some(etcd) = backend("crud") else { return };
    etcd.register(instance("b", 2)).await.expect("valid");
    etcd.register(instance("a", 1)).await.expect("valid");
    etcd.register(ServiceInstance::new("users", ("127.0.0.1", 3)).with_id("u"))
        .await
        .expect("valid");
    let records = etcd.instances("orders").await.expect("listed");
    assert_eq!(ids(&records), ["a", "b"], "in id order");
    assert_eq!(records[0].health, HealthStatus::Unknown);
    assert!(records[0].last_heartbeat_ms > 0);
    assert_eq!(etcd.services().await.expect("listed"), ["orders", "users"]);

    etcd.set_health("orders", "a", HealthStatus::Unhealthy)
        .await
        .expect("registered");
    etcd.register(instance("a", 1)).await.expect("valid");
    let records = etcd.instances("orders").await.expect("listed");
    assert_eq!(
        records[0].health,
        HealthStatus::Unhealthy,
        "re-registering the same instance keeps its health"
    );
    etcd.register(instance("a", 9)).await.expect("valid");
    let records = etcd.instances("orders").await.expect("listed");
    assert_eq!(records[0].instance.port, 9, "re-registering replaces");
    assert_eq!(
        records[0].health,
        HealthStatus::Unknown,
        "a new address starts unknown"
    );

    etcd.deregister("orders", "a").await.expect("registered");
    assert_eq!(
        etcd.deregister("orders", "a").await,
        Err(RegistryError::UnknownInstance {
            service: "orders".into(),
            id: "a".into()
        })
    );
    assert!(matches!(
        etcd.set_health("orders", "a", HealthStatus::Healthy).await,
        Err(RegistryError::UnknownInstance { .. })
    ));
    assert_eq!(ids(&etcd.instances("orders").await.expect("listed")), ["b"]);
    assert!(etcd.instances("nothing").await.expect("listed").is_empty());
}

#[tokio::test]
async fn hostile_names_are_refused_before_reaching_etcd() {
    let Some(etcd) = backend("hostile") else {
        return;
    };
    etcd.register(instance("a", 1)).await.expect("valid");
    for service in ["", "orders/a", "..", "a b"] {
        assert!(
            matches!(
                etcd.instances(service).await,
                Err(RegistryError::Invalid { .. })
            ),
            "{service:?}"
        );
    }
    assert!(matches!(
        etcd.deregister("orders", "../orders/a").await,
        Err(RegistryError::Invalid { .. })
    ));
    let err = etcd
        .register(ServiceInstance::new("orders", ("evil host/", 80)).with_id("c"))
        .await
        .expect_err("bad host");
    assert!(matches!(err, RegistryError::Invalid { field: "host", .. }));
    assert_eq!(
        ids(&etcd.instances("orders").await.expect("listed")),
        ["a"],
        "nothing else was disturbed"
    );
}

#[tokio::test]
async fn heartbeats_renew_the_lease_and_silence_lets_it_expire() {
    let Some(etcd) = backend("lease") else { return };
    let etcd = etcd.with_ttl(Duration::from_secs(2));
    let mut changes = etcd.watch("orders").await.expect("watch");
    etcd.register(instance("kept", 1)).await.expect("valid");
    etcd.register(instance("silent", 2)).await.expect("valid");

    // Keep `kept` alive for twice its TTL; `silent` sends nothing.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        etcd.heartbeat("orders", "kept").await.expect("alive");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let records = etcd.instances("orders").await.expect("listed");
    assert_eq!(ids(&records), ["kept"], "etcd expired the silent lease");
    assert!(matches!(
        etcd.heartbeat("orders", "silent").await,
        Err(RegistryError::UnknownInstance { .. })
    ));
    watch_until(&mut changes, &["kept"], "the watch saw the expiry").await;

    // Now `kept` falls silent too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if etcd.instances("orders").await.expect("listed").is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while !changes.borrow_and_update().is_empty() {
            changes.changed().await.expect("watching");
        }
    })
    .await
    .expect("the watch saw the second expiry");
}

#[tokio::test]
async fn a_watch_sees_every_change_from_any_writer() {
    let Some(etcd) = backend("watch") else { return };
    // Another process (here, another backend) writing under the same prefix.
    let other = EtcdBackend::new(&[etcd_endpoint().expect("set")])
        .expect("endpoint")
        .with_prefix(etcd.prefix());
    let mut changes = etcd.watch("orders").await.expect("watch");
    assert!(changes.borrow_and_update().is_empty());

    let next = |changes: &mut tokio::sync::watch::Receiver<sdk_registry::Snapshot>| {
        let mut changes = changes.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(5), changes.changed())
                .await
                .expect("a change within 5 s")
                .expect("watching");
            let snapshot = changes.borrow_and_update().clone();
            snapshot
        }
    };

    other.register(instance("a", 1)).await.expect("valid");
    let snapshot = next(&mut changes).await;
    assert_eq!(ids(&snapshot), ["a"]);
    changes.borrow_and_update();

    other
        .set_health("orders", "a", HealthStatus::Unhealthy)
        .await
        .expect("registered");
    let snapshot = next(&mut changes).await;
    assert_eq!(snapshot[0].health, HealthStatus::Unhealthy);
    changes.borrow_and_update();

    other.register(instance("b", 2)).await.expect("valid");
    let snapshot = next(&mut changes).await;
    assert_eq!(ids(&snapshot), ["a", "b"]);
    changes.borrow_and_update();

    other.deregister("orders", "a").await.expect("registered");
    let snapshot = next(&mut changes).await;
    assert_eq!(ids(&snapshot), ["b"]);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_skipped_and_none_is_a_typed_error() {
    let Some(endpoint) = etcd_endpoint() else {
        return;
    };
    // A port nothing listens on: bind one, then free it.
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let prefix = format!("/sdk-test/failover-{}/", std::process::id());
    let etcd = EtcdBackend::new(&[refused.clone(), endpoint])
        .expect("endpoints")
        .with_prefix(&prefix);
    etcd.register(instance("a", 1))
        .await
        .expect("the second endpoint answers");
    assert_eq!(ids(&etcd.instances("orders").await.expect("listed")), ["a"]);
    etcd.deregister("orders", "a").await.expect("registered");

    let down = EtcdBackend::new(&[refused]).expect("endpoint");
    let err = down.instances("orders").await.expect_err("nothing answers");
    assert!(matches!(err, RegistryError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("etcd"), "{err}");
    let changes = down.watch("orders").await.expect("a watch starts anyway");
    assert!(changes.borrow().is_empty());
    assert!(
        matches!(
            down.watch_problem("orders"),
            Some(RegistryError::Unavailable(_))
        ),
        "the watch says why it is empty"
    );
    // An SDK on it says why a call finds no instance.
    let sdk = sdk::ServiceSdk::builder()
        .registry(down)
        .build()
        .expect("valid");
    let err = sdk
        .get_client("orders")
        .get("/")
        .send::<String>()
        .await
        .expect_err("no instance");
    assert!(
        matches!(
            &err,
            sdk::ServiceError::NoHealthyInstance {
                reason: sdk::balance::NoInstanceReason::RegistryUnreachable(_),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_discovers_through_etcd() {
    let Some(etcd) = backend("sdk") else { return };
    let server = sdk::ServiceSdk::builder()
        .registry(etcd.clone())
        .build()
        .expect("valid");
    let port = support::echo("a").await;
    let registration = server
        .register_current_service(ServiceInstance::new("echo", ("127.0.0.1", port)).with_id("a"))
        .await
        .expect("registered");

    // A second SDK, as another process would, configured from a file to use the same etcd.
    let file = std::env::temp_dir().join(format!("sdk-etcd-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "[sdk]\netcd_endpoints = [\"{}\"]\netcd_prefix = \"{}\"\n",
            etcd_endpoint().expect("set"),
            etcd.prefix()
        ),
    )
    .expect("write the config");
    let caller = sdk::ServiceSdk::from_config_file(&file).expect("valid");
    let _ = std::fs::remove_file(&file);
    let client = caller.get_client("echo");
    let name: String = client
        .get("/")
        .send()
        .await
        .expect("discovered through etcd");
    assert_eq!(name, "a");

    let port_b = support::echo("b").await;
    let started = Instant::now();
    etcd.register(ServiceInstance::new("echo", ("127.0.0.1", port_b)).with_id("b"))
        .await
        .expect("valid");
    registration.deregister().await.expect("registered");
    let mut only_b = 0;
    while only_b < 20 {
        match client.get("/").send::<String>().await {
            Ok(name) if name == "b" => only_b += 1,
            _ => only_b = 0,
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the change never reached the caller"
        );
    }
}

/// An etcd of this test's own (so it can be stopped), on free loopback ports.
struct OwnEtcd {
    child: tokio::process::Child,
    endpoint: String,
}

impl OwnEtcd {
    async fn start(dir: &std::path::Path, client_port: u16, peer_port: u16) -> OwnEtcd {
        Self::start_with(dir, client_port, peer_port, None).await
    }

    /// With `tls` (certificate and key PEM files), clients must speak HTTPS.
    async fn start_with(
        dir: &std::path::Path,
        client_port: u16,
        peer_port: u16,
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> OwnEtcd {
        Self::start_full(dir, client_port, peer_port, tls, &[]).await
    }

    async fn start_full(
        dir: &std::path::Path,
        client_port: u16,
        peer_port: u16,
        tls: Option<(&std::path::Path, &std::path::Path)>,
        extra: &[&str],
    ) -> OwnEtcd {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut command = tokio::process::Command::new("etcd");
        if let Some((cert, key)) = tls {
            command
                .arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key);
        }
        let mut child = command
            .args(extra)
            .args(["--name", "own", "--data-dir"])
            .arg(dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg(format!("--initial-cluster=own={peer}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("etcd is on PATH (scripts/test installs it)");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("read etcd's log") {
                if line.contains("ready to serve client requests") {
                    break;
                }
            }
        })
        .await
        .expect("etcd starts within 20 s");
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        OwnEtcd {
            child,
            endpoint: client,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_keeps_the_last_set_while_etcd_is_down_and_catches_up_after() {
    if etcd_endpoint().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sdk-own-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (client_port, peer_port) = (free_port(), free_port());
    let mut etcd = OwnEtcd::start(&dir, client_port, peer_port).await;
    let backend = EtcdBackend::new(&[etcd.endpoint.clone()]).expect("endpoint");
    backend.register(instance("a", 1)).await.expect("valid");
    let mut changes = backend.watch("orders").await.expect("watch");
    assert_eq!(ids(&changes.borrow_and_update()), ["a"]);

    etcd.child.kill().await.expect("stop etcd");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        ids(&changes.borrow()),
        ["a"],
        "the last known set stays while etcd is down"
    );
    assert!(matches!(
        backend.instances("orders").await,
        Err(RegistryError::Unavailable(_))
    ));

    let _etcd = OwnEtcd::start(&dir, client_port, peer_port).await;
    backend
        .register(instance("b", 2))
        .await
        .expect("etcd is back");
    watch_until(
        &mut changes,
        &["a", "b"],
        "the watch caught up after the restart",
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_over_https() {
    if etcd_endpoint().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sdk-tls-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let identity = support::tls::self_signed();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &identity.cert_pem).expect("write the certificate");
    std::fs::write(&key, &identity.key_pem).expect("write the key");
    let (client_port, peer_port) = (free_port(), free_port());
    let _etcd = OwnEtcd::start_with(
        &dir.join("data"),
        client_port,
        peer_port,
        Some((&cert, &key)),
    )
    .await;
    let endpoint = format!("https://localhost:{client_port}");

    let etcd = EtcdBackend::with_tls(
        std::slice::from_ref(&endpoint),
        support::tls::trusting(&identity.cert),
    )
    .expect("an https endpoint");
    etcd.register(instance("a", 1))
        .await
        .expect("registered over https");
    let mut changes = etcd.watch("orders").await.expect("watch");
    assert_eq!(ids(&changes.borrow_and_update()), ["a"]);
    etcd.register(instance("b", 2))
        .await
        .expect("registered over https");
    watch_until(&mut changes, &["a", "b"], "the watch streams over https").await;

    // Mozilla's roots do not vouch for a private certificate: verification is on.
    let untrusting = EtcdBackend::new(&[endpoint]).expect("an https endpoint");
    assert!(matches!(
        untrusting.instances("orders").await,
        Err(RegistryError::Unavailable(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Turns on etcd's authentication with a `root` user (password `rootpw`).
async fn enable_auth(endpoint: &str) {
    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/v3/auth/user/add",
            serde_json::json!({ "name": "root", "password": "rootpw" }),
        ),
        ("/v3/auth/role/add", serde_json::json!({ "name": "root" })),
        (
            "/v3/auth/user/grant",
            serde_json::json!({ "user": "root", "role": "root" }),
        ),
        ("/v3/auth/enable", serde_json::json!({})),
    ] {
        let answer = http
            .post(format!("{endpoint}{path}"))
            .json(&body)
            .send()
            .await
            .expect("etcd answers");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_with_authentication() {
    if etcd_endpoint().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sdk-auth-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (client_port, peer_port) = (free_port(), free_port());
    // Auth tokens live 1 s here, so the test sees one expire and be replaced.
    let etcd = OwnEtcd::start_full(
        &dir,
        client_port,
        peer_port,
        None,
        &["--auth-token-ttl", "1"],
    )
    .await;
    enable_auth(&etcd.endpoint).await;

    let anonymous = EtcdBackend::new(std::slice::from_ref(&etcd.endpoint)).expect("endpoint");
    let err = anonymous
        .register(instance("a", 1))
        .await
        .expect_err("authentication is required");
    assert!(err.to_string().contains("requires authentication"), "{err}");

    let wrong = EtcdBackend::new(std::slice::from_ref(&etcd.endpoint))
        .expect("endpoint")
        .with_credentials("root", "nope");
    let err = wrong
        .register(instance("a", 1))
        .await
        .expect_err("bad password");
    assert!(err.to_string().contains("authentication failed"), "{err}");

    let backend = EtcdBackend::new(std::slice::from_ref(&etcd.endpoint))
        .expect("endpoint")
        .with_credentials("root", "rootpw");
    assert!(
        !format!("{backend:?}").contains("rootpw"),
        "the password never prints"
    );
    backend
        .register(instance("a", 1))
        .await
        .expect("authenticated");
    let mut changes = backend.watch("orders").await.expect("watch");
    assert_eq!(ids(&changes.borrow_and_update()), ["a"]);

    // The token expires; the next calls fetch a new one and carry on.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    backend
        .heartbeat("orders", "a")
        .await
        .expect("a fresh token");
    backend
        .register(instance("b", 2))
        .await
        .expect("a fresh token");
    watch_until(
        &mut changes,
        &["a", "b"],
        "the watch follows with authentication",
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
