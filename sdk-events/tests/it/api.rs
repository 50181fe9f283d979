//! The reference API end to end against the real binary, on SQLite and on PostgreSQL:
//! set-up, publishing with schema checks, auth, signed deliveries, idempotency, bad input.

use crate::support;
use sdk_test_support::readme_curl;

use std::time::{Duration, SystemTime};

use crate::support::{databases, user, user_schema, Bus, Receiver, ADMIN};
use reqwest::Method;
use sdk_events::signature::{verify, Secret, DEFAULT_TOLERANCE};
use serde_json::{json, Value};

async fn event_count(bus: &Bus) -> usize {
    bus.admin_get("/v1/events?limit=1000").await["events"]
        .as_array()
        .expect("events")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_validates_and_delivers_signed() {
    for db in databases() {
        let bus = Bus::start(&db, &[]).await;
        let receiver = Receiver::start().await;
        let (users, _) = bus.application("user-service").await;
        let (_, email_secret) = bus.application("email-service").await;
        bus.action("user.created", "user-service", user_schema())
            .await;
        let secret = bus
            .subscribe(
                "email-service",
                "welcome-emails",
                "user.created",
                &receiver.url,
            )
            .await;
        assert_eq!(
            secret, email_secret,
            "a subscription signs with its application's secret"
        );

        let (status, published) = bus.publish(&users, "user.created", user(1)).await;
        assert_eq!(status, 201, "{}: {published}", db.name);
        assert_eq!(published["deliveries"], 1);
        let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(seen.len(), 1, "{}: delivered once", db.name);
        let delivery = &seen[0];
        let body = delivery.json();
        assert_eq!(body["action"], "user.created");
        assert_eq!(body["payload"], user(1));
        assert_eq!(body["id"], published["id"]);
        assert_eq!(
            delivery.header("webhook-id"),
            published["id"].as_str().unwrap_or_default()
        );
        let secrets = [Secret::parse(&secret).expect("secret")];
        let verified = verify(
            &secrets,
            &delivery.headers,
            &delivery.body,
            SystemTime::now(),
            DEFAULT_TOLERANCE,
        );
        assert!(verified.is_ok(), "{}: {verified:?}", db.name);
        assert!(
            !delivery.header("webhook-signature").contains(&secret),
            "the secret itself never travels"
        );

        // A payload the schema refuses: 422 with the path and keyword, nothing stored.
        let before = event_count(&bus).await;
        let bad = json!({"user_id": "u2", "email": "not-an-email", "name": "B", "plan": "gold"});
        let (status, answer) = bus.publish(&users, "user.created", bad).await;
        assert_eq!(status, 422, "{answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("/email") || error.contains("/plan"),
            "{error}"
        );
        assert!(
            error.contains("format") || error.contains("enum"),
            "{error}"
        );
        let (status, answer) = bus
            .publish(&users, "user.created", json!({"user_id": "u3"}))
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains("required"),
            "{answer}"
        );
        assert_eq!(
            event_count(&bus).await,
            before,
            "refused payloads store nothing"
        );

        // Listings never show a secret or a token.
        for path in ["/v1/applications", "/v1/subscriptions"] {
            let listed = bus.admin_get(path).await.to_string();
            assert!(
                !listed.contains("whsec_") && !listed.contains("evt_"),
                "{path}: {listed}"
            );
        }
        assert!(
            !bus.logged().contains("whsec_"),
            "secrets stay out of the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_actions_application_publishes_it_and_setup_needs_the_admin() {
    for db in databases() {
        let bus = Bus::start(&db, &[]).await;
        let (users, _) = bus.application("user-service").await;
        let (orders, _) = bus.application("order-service").await;
        bus.action("user.created", "user-service", user_schema())
            .await;

        let (status, answer) = bus.publish(&orders, "user.created", user(1)).await;
        assert_eq!(status, 403, "{answer}");
        assert!(answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("belongs to `user-service`"));
        let (status, _) = bus.publish(ADMIN, "user.created", user(1)).await;
        assert_eq!(status, 403, "the admin does not publish for an application");
        let (status, _) = bus.publish("evt_wrong", "user.created", user(1)).await;
        assert_eq!(status, 401);
        let (status, _) = bus
            .call(
                Method::POST,
                "/v1/events",
                None,
                Some(json!({"action": "user.created", "payload": user(1)})),
            )
            .await;
        assert_eq!(status, 401);
        let (status, _) = bus.publish(&users, "user.deleted", json!({})).await;
        assert_eq!(status, 404, "an unknown action");

        let app = json!({"application": "x", "address": "https://x.example.com"});
        let (status, _) = bus
            .call(Method::POST, "/v1/applications", None, Some(app.clone()))
            .await;
        assert_eq!(status, 401);
        let (status, _) = bus
            .call(Method::POST, "/v1/applications", Some(&users), Some(app))
            .await;
        assert_eq!(status, 403, "an application's token is not the admin's");
        let (status, _) = bus
            .call(Method::GET, "/v1/events", Some(&users), None)
            .await;
        assert_eq!(status, 403);
        assert_eq!(event_count(&bus).await, 0, "nothing refused was stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_stores_one_event() {
    for db in databases() {
        let bus = Bus::start(&db, &[]).await;
        let (users, _) = bus.application("user-service").await;
        bus.action("user.created", "user-service", user_schema())
            .await;
        let body =
            json!({"action": "user.created", "payload": user(1), "idempotency_key": "signup-1"});
        let (first, a) = bus
            .call(Method::POST, "/v1/events", Some(&users), Some(body.clone()))
            .await;
        let (again, b) = bus
            .call(Method::POST, "/v1/events", Some(&users), Some(body))
            .await;
        assert_eq!((first, again), (201, 200), "{a} {b}");
        assert_eq!(a["id"], b["id"]);
        assert_eq!(b["duplicate"], true);
        assert_eq!(event_count(&bus).await, 1, "{}", db.name);

        // Published at once (on SQLite, many in one batch of the writer), with keys
        // repeated among them: one event per key, each repeat answering its id.
        let calls = (0..40).map(|n| {
            let body = json!({"action": "user.created", "payload": user(n),
                "idempotency_key": format!("burst-{}", n % 8)});
            let (bus, users) = (&bus, &users);
            async move {
                bus.call(Method::POST, "/v1/events", Some(users), Some(body))
                    .await
            }
        });
        let answers = futures_util::future::join_all(calls).await;
        let created = answers.iter().filter(|(status, _)| *status == 201).count();
        assert_eq!(created, 8, "{}: {answers:?}", db.name);
        for key in 0..8 {
            let ids: std::collections::HashSet<_> = answers
                .iter()
                .skip(key)
                .step_by(8)
                .map(|(_, answer)| answer["id"].to_string())
                .collect();
            assert_eq!(ids.len(), 1, "{}: key {key}: {ids:?}", db.name);
        }
        assert_eq!(event_count(&bus).await, 9, "{}", db.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_4xx_and_stores_nothing() {
    let db = support::sqlite();
    let bus = Bus::start(&db, &["--max-body", "4096"]).await;
    let (users, _) = bus.application("user-service").await;
    bus.action("user.created", "user-service", user_schema())
        .await;
    let http = reqwest::Client::new();
    let raw = |path: &str, token: &str, body: String| {
        http.post(format!("{}{path}", bus.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let malformed = raw("/v1/events", &users, "{\"action\": ".into())
        .await
        .expect("answer");
    assert_eq!(malformed.status(), 400);
    let answer: Value = malformed.json().await.expect("a JSON error");
    assert!(answer["error"].is_string());
    let big =
        json!({"action": "user.created", "payload": {"name": "x".repeat(10_000)}}).to_string();
    let oversized = raw("/v1/events", &users, big).await.expect("answer");
    assert_eq!(oversized.status(), 413);
    assert!(oversized.json::<Value>().await.expect("JSON")["error"].is_string());

    let not_a_schema =
        json!({"action": "a.b", "application": "user-service", "schemata": {"type": 12}});
    let (status, answer) = bus
        .call(Method::POST, "/v1/actions", Some(ADMIN), Some(not_a_schema))
        .await;
    assert_eq!(status, 400, "{answer}");
    let remote = json!({"action": "a.c", "application": "user-service", "schemata": {"$ref": "http://127.0.0.1:9/s.json"}});
    let (status, answer) = bus
        .call(Method::POST, "/v1/actions", Some(ADMIN), Some(remote))
        .await;
    assert_eq!(status, 400, "a remote $ref is refused: {answer}");
    for handler in [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "not a url",
        "http://u:p@example.com/",
    ] {
        let body = json!({"application": "user-service", "subscription": "s", "action": "user.created", "handler": handler});
        let (status, answer) = bus
            .call(Method::POST, "/v1/subscriptions", Some(ADMIN), Some(body))
            .await;
        assert_eq!(status, 400, "{handler}: {answer}");
    }
    let (status, _) = bus
        .call(
            Method::POST,
            "/v1/applications",
            Some(ADMIN),
            Some(json!({"application": "../x", "address": "https://x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        bus.admin_get("/v1/actions").await["actions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        bus.admin_get("/v1/subscriptions").await["subscriptions"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(event_count(&bus).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let db = support::sqlite();
    let bus = Bus::start(&db, &[]).await;
    let receiver = Receiver::start().await;
    let (users, _) = bus.welcome(&receiver.url).await;
    let (status, health) = bus.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "sqlite");
    assert_eq!(health["writes"], "token");
    bus.publish(&users, "user.created", user(1)).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // The attempt is counted once it is recorded, just after the receiver saw it.
    let metrics = format!("{}/metrics", bus.url);
    let metrics = &metrics;
    let text = support::poll(Duration::from_secs(10), || async move {
        let text = reqwest::get(metrics).await.ok()?.text().await.ok()?;
        text.contains("sdk_events_attempts_total{outcome=\"delivered\"} 1")
            .then_some(text)
    })
    .await
    .expect("delivery metrics");
    assert!(
        text.contains("sdk_events_published_total{action=\"user.created\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sdk_events_attempts_total{outcome=\"delivered\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("whsec_") && !text.contains("evt_"),
        "no secret in metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_deliveries_page_in_order_by_filter() {
    for db in databases() {
        let bus = Bus::start(&db, &["--no-dispatcher"]).await;
        let (users, _) = bus.application("user-service").await;
        bus.application("email-service").await;
        bus.action("user.created", "user-service", user_schema())
            .await;
        bus.action("user.deleted", "user-service", json!({"type": "object"}))
            .await;
        bus.subscribe(
            "email-service",
            "welcome",
            "user.created",
            "http://127.0.0.1:9/hook",
        )
        .await;
        let mut created = Vec::new();
        for n in 0..5 {
            let (_, answer) = bus.publish(&users, "user.created", user(n)).await;
            created.push(answer["id"].as_str().expect("id").to_owned());
            bus.publish(&users, "user.deleted", json!({"n": n})).await;
        }
        let mut seen = Vec::new();
        let mut path = "/v1/events?action=user.created&limit=2".to_owned();
        loop {
            let page = bus.admin_get(&path).await;
            for event in page["events"].as_array().expect("events") {
                assert_eq!(event["action"], "user.created");
                seen.push(event["id"].as_str().expect("id").to_owned());
            }
            match page["next_after"].as_str() {
                Some(next) => path = format!("/v1/events?action=user.created&limit=2&after={next}"),
                None => break,
            }
        }
        assert_eq!(
            seen, created,
            "{}: every page, in order, only that action",
            db.name
        );
        let all = bus.admin_get("/v1/events?limit=1000").await;
        assert_eq!(all["events"].as_array().map(Vec::len), Some(10));
        let none = bus.admin_get("/v1/events?to=1970-01-02T00:00:00Z").await;
        assert_eq!(
            none["events"].as_array().map(Vec::len),
            Some(0),
            "the range applies"
        );
        let (status, _) = bus
            .call(Method::GET, "/v1/events?after=12", Some(ADMIN), None)
            .await;
        assert_eq!(status, 400, "a cursor is what next_after said");

        assert_eq!(bus.deliveries("welcome", "pending").await.len(), 5);
        assert_eq!(bus.deliveries("welcome", "dead").await.len(), 0);
        let page = bus.admin_get("/v1/deliveries?limit=2").await;
        assert_eq!(page["deliveries"].as_array().map(Vec::len), Some(2));
        let next = page["next_after"].as_i64().expect("a next page");
        let rest = bus
            .admin_get(&format!("/v1/deliveries?status=pending&after={next}"))
            .await;
        assert_eq!(rest["deliveries"].as_array().map(Vec::len), Some(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_its_log_bounded_while_writing() {
    // Published without pause by several callers (the writer never idle), the events
    // reach the database file, and the write-ahead log stays near SQLite's 4 MB
    // checkpoint mark instead of growing with every write.
    let db = support::sqlite();
    let bus = Bus::start(&db, &["--no-dispatcher"]).await;
    let (token, _) = bus.application("user-service").await;
    bus.action("user.created", "user-service", json!({"type": "object"}))
        .await;
    let path = db.url.trim_start_matches("sqlite:").to_owned();
    let size = |path: &str| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let before = size(&path);
    let bio = "x".repeat(1_000);
    // 3,000 events, each its own commit or close to it: some 30 MB of log pages in all,
    // were none of it copied back.
    let callers = (0..8u64).map(|caller| {
        let (bus, token, bio) = (&bus, &token, &bio);
        async move {
            for n in 0..375u64 {
                let (status, _) = bus
                    .publish(
                        token,
                        "user.created",
                        json!({"caller": caller, "n": n, "bio": bio}),
                    )
                    .await;
                assert_eq!(status, 201);
            }
        }
    });
    futures_util::future::join_all(callers).await;
    let published = 3_000u64;
    let (copied, log) = (
        size(&path).saturating_sub(before),
        size(&format!("{path}-wal")),
    );
    assert!(
        copied >= published * 500,
        "{published} events of 1 KB published, {copied} bytes in the database file"
    );
    assert!(
        log <= 16 << 20,
        "{published} events published, and the log holds {log} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_over_tls_and_its_certificate_checked() {
    let Some(mut db) = support::postgres() else {
        return;
    };
    // The machine's server offers TLS with a self-signed certificate (Debian's).
    let plain = db.url.clone();
    db.url = format!("{plain}?sslmode=require");
    let bus = Bus::start(&db, &[]).await;
    let (token, _) = bus.application("user-service").await;
    bus.action("user.created", "user-service", user_schema())
        .await;
    let (status, _) = bus.publish(&token, "user.created", user(1)).await;
    assert_eq!(status, 201);
    let connections = |ssl: bool| {
        db.psql(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{}' AND s.ssl = {ssl}",
            db.pg_name()
        ))
    };
    assert_ne!(connections(true), "0", "the bus's connections use TLS");
    assert_eq!(connections(false), "0", "and none goes without");
    drop(bus);

    // Checking the certificate against the web's roots refuses the self-signed one: the
    // bus does not start, and says why.
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_sdk-events"))
        .args(["--listen", "127.0.0.1:0", "--token", ADMIN, "--database"])
        .arg(format!("{plain}?sslmode=verify-full"))
        .env_remove("SDK_EVENTS_DATABASE")
        .output()
        .await
        .expect("run the binary");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "started without a trusted certificate"
    );
    assert!(said.to_lowercase().contains("certificate"), "{said}");
}

/// A tenant must not make the bus call the bus's own network: loopback in every spelling,
/// private ranges, link-local (cloud metadata), unique-local IPv6 and the internal names
/// are refused unless an operator allows them, and a name is judged again after DNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_at_internal_addresses_are_refused_unless_allowed() {
    let db = support::sqlite();
    let receiver = Receiver::start().await;
    let port = receiver
        .url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let bus = Bus::start_strict(&db, &[]).await;
    let (users, _) = bus.application("user-service").await;
    bus.application("email-service").await;
    bus.action("user.created", "user-service", user_schema())
        .await;
    let internal = [
        format!("http://127.0.0.1:{port}"),
        format!("http://127.1:{port}"),
        format!("http://2130706433:{port}"),
        format!("http://0x7f000001:{port}"),
        format!("http://0177.0.0.1:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://0.0.0.0:{port}"),
        format!("http://localhost:{port}"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::ffff:169.254.169.254]/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://172.16.5.4/hook".to_owned(),
        "http://192.168.1.1/hook".to_owned(),
        "http://100.64.0.1/hook".to_owned(),
        "http://[fd00::1]/hook".to_owned(),
        "http://[fe80::1]/hook".to_owned(),
        "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
    ];
    for (i, handler) in internal.iter().enumerate() {
        let (status, answer) = bus
            .call(
                Method::POST,
                "/v1/subscriptions",
                Some(ADMIN),
                Some(
                    json!({"application": "email-service", "subscription": format!("s{i}"),
                    "action": "user.created", "handler": handler}),
                ),
            )
            .await;
        assert_eq!(status, 400, "{handler}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("internal address")),
            "{handler}: {answer}"
        );
    }
    // A public address is taken.
    bus.subscribe(
        "email-service",
        "public",
        "user.created",
        "https://hooks.example.com/x",
    )
    .await;
    drop(bus);

    // An operator's allow-list lets one network in; a name that resolves elsewhere inside is
    // refused when the delivery connects (after DNS), and nothing reaches the receiver.
    let bus = Bus::start_strict(&db, &["--allow-handler-network", "10.0.0.0/8"]).await;
    bus.subscribe(
        "email-service",
        "by-name",
        "user.created",
        &format!("http://localhost:{port}/hook"),
    )
    .await;
    bus.publish(&users, "user.created", user(1)).await;
    let dead = wait_dead(&bus, "by-name").await;
    assert!(
        dead["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("internal address")),
        "{dead}"
    );
    assert!(receiver.seen().is_empty(), "the receiver was called");
    drop(bus);

    // `--allow-private-handlers` lets everything in, for deployments that need it.
    let bus = Bus::start_strict(&db, &["--allow-private-handlers"]).await;
    bus.subscribe("email-service", "loopback", "user.created", &receiver.url)
        .await;
    bus.publish(&users, "user.created", user(2)).await;
    assert_eq!(receiver.wait_for(1, Duration::from_secs(10)).await.len(), 1);
}

/// The dead delivery of `subscription`, waited for up to 10 s.
async fn wait_dead(bus: &Bus, subscription: &str) -> Value {
    for _ in 0..200 {
        if let Some(dead) = bus.deliveries(subscription, "dead").await.first() {
            return dead.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no dead delivery for {subscription}");
}

/// The documentation's curl lines for the event bus, run as written (with this bus's address, its
/// admin token, and the publishing token the first line answers with).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_curl_lines_work_as_written() {
    let db = support::sqlite();
    let bus = Bus::start(&db, &[]).await;
    let addr = bus.addr().to_owned();
    tokio::task::spawn_blocking(move || {
        let curls = readme_curl::curls("## The API, with curl");
        let admin = format!("Authorization: Bearer {ADMIN}");
        let env = [("ADMIN", admin.as_str())];
        let (status, created) =
            readme_curl::run(&curls[0], &[("localhost:8600", addr.as_str())], &env);
        assert_eq!(status, 201, "{created}");
        let created: Value = serde_json::from_str(&created).expect("JSON");
        let token = created["token"].as_str().expect("a token").to_owned();
        let replace = [
            ("localhost:8600", addr.as_str()),
            ("evt_3f9c…", token.as_str()),
        ];
        let bodies = readme_curl::run_all(&curls[1..], &replace, &env);
        assert!(
            bodies.iter().any(|b| b.contains("\"deliveries\":1")),
            "{bodies:?}"
        );
    })
    .await
    .expect("the curl lines");
}

/// The bus serves HTTPS with `--tls-cert` and `--tls-key` (the flags every server binary
/// takes from `sdk_server::ServeArgs`): a client trusting the certificate is answered, and
/// plain HTTP to the port is not. (A bad or missing file is `sdk_server::tls::load`'s error,
/// tested there, and the registry's binary test shows it stops a binary before it listens.)
#[tokio::test(flavor = "multi_thread")]
async fn the_bus_serves_https() {
    use sdk::registry::rustls;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!("sdk-events-tls-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write the key");
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let database = support::sqlite();
    let bus = Bus::start(&database, &["--tls-cert", &cert_arg, "--tls-key", &key_arg]).await;
    let port = bus.addr().rsplit(':').next().expect("port").to_owned();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(certified.cert.der().clone())
        .expect("trust the test certificate");
    let tls = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let sdk = sdk::ServiceSdk::builder()
        .tls_config(tls)
        .build()
        .expect("an SDK");
    let client = sdk
        .client_for_url(&format!("https://localhost:{port}"))
        .expect("a URL");
    let health: Value = client.get("/health").send().await.expect("over https");
    assert_eq!(health["status"], "ok", "{health}");

    let plain = reqwest::get(format!("http://{}/health", bus.addr())).await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP to the HTTPS port gets no answer"
    );

    let _ = std::fs::remove_dir_all(&dir);
}

/// `--config`: the flags in `[server.events]` of the platform's TOML file (a list for a
/// repeatable flag); a flag on the command line overrides one.
#[tokio::test]
async fn the_config_file_sets_flags_and_a_flag_overrides_them() {
    let db = support::sqlite();
    let dir = sdk_test_support::TempDir::new("events-config");
    let file = dir.join("platform.toml");
    let text = format!(
        "[server.events]\nlisten = \"127.0.0.1:0\"\ndatabase = \"{}\"\ntoken = \"from-file\"\n\
         no_dispatcher = true\nallow_handler_network = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\n\n\
         [server.registry]\nttl_secs = 30\n",
        db.url
    );
    std::fs::write(&file, text).expect("write the file");
    let events = "/v1/events?limit=1";

    let bus = Bus::start_with_config(&file, &[]).await;
    assert_eq!(
        bus.call(Method::GET, events, Some("from-file"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        bus.call(Method::GET, events, Some(ADMIN), None).await.0,
        401
    );
    drop(bus);

    let bus = Bus::start_with_config(&file, &["--token", ADMIN]).await;
    assert_eq!(
        bus.call(Method::GET, events, Some("from-file"), None)
            .await
            .0,
        401,
        "the flag wins"
    );
    assert_eq!(
        bus.call(Method::GET, events, Some(ADMIN), None).await.0,
        200
    );
    // The file's networks are let in (a handler there is taken), the rest still refused.
    bus.application("email-service").await;
    bus.application("user-service").await;
    bus.action("user.created", "user-service", user_schema())
        .await;
    bus.subscribe(
        "email-service",
        "inside",
        "user.created",
        "http://10.1.2.3/hook",
    )
    .await;
    let (status, _) = bus
        .call(
            Method::POST,
            "/v1/subscriptions",
            Some(ADMIN),
            Some(
                json!({"application": "email-service", "subscription": "other",
                "action": "user.created", "handler": "http://172.16.0.1/hook"}),
            ),
        )
        .await;
    assert_eq!(status, 400, "172.16.0.0/12 is not in the file's list");
}
