//! Building the SDK from a TOML file, and refusing bad configuration clearly.

use std::time::Duration;

use crate::support::{Reply, Scripted};
use sdk::{ConfigError, ServiceConfig, ServiceSdk};

fn write_config(text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sdk-config-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("services.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn calls_go_where_the_file_says() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 9 }))).await;
    let port = server.url.rsplit(':').next().expect("port").to_owned();
    // Only this test reads this variable.
    std::env::set_var("SDK_TEST_ORDERS_PORT", &port);
    let path = write_config(
        r#"
        [services.order-service]
        instances = ["http://127.0.0.1:${SDK_TEST_ORDERS_PORT}"]
        timeout = "2s"
        [services.order-service.retry]
        max_attempts = 2
        [services.order-service.cache]
        enabled = true
        ttl = "1m"
        "#,
    );
    let sdk = ServiceSdk::from_config_file(&path).expect("valid file");
    let orders = sdk.get_client("order-service");
    let order: serde_json::Value = orders.get("/orders/9").send().await.expect("reached");
    assert_eq!(order["id"], 9);
    orders
        .get("/orders/9")
        .send::<serde_json::Value>()
        .await
        .expect("cached");
    assert_eq!(server.hits(), 1, "the file turned the cache on");
    assert_eq!(
        sdk.config().service("order-service").timeout,
        Duration::from_secs(2)
    );
}

#[test]
fn bad_files_name_the_file_the_key_and_the_problem() {
    let path = write_config("[services.orders.retry]\nmax_attempts = \"many\"\n");
    let err = ServiceSdk::from_config_file(&path).expect_err("bad value");
    let message = err.to_string();
    assert!(message.contains("services.toml"), "{message}");
    assert!(
        message.contains("services.orders.retry.max_attempts"),
        "{message}"
    );
    assert!(message.contains("many"), "{message}");
    assert_eq!(err.key(), Some("services.orders.retry.max_attempts"));

    let err = ServiceSdk::from_config_file("/nonexistent/services.toml").expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/services.toml"));
}

#[test]
fn inconsistent_settings_are_refused_at_build() {
    let err = ServiceSdk::builder()
        .service(
            "svc",
            ServiceConfig::new()
                .timeout(Duration::from_secs(1))
                .attempt_timeout(Duration::from_secs(5)),
        )
        .build()
        .expect_err("attempt timeout longer than the deadline");
    assert_eq!(err.key(), Some("services.svc.attempt_timeout"));

    let retry = sdk::retry::RetryConfig::new().max_attempts(0);
    let err = ServiceSdk::builder()
        .service("svc", ServiceConfig::new().retry(retry))
        .build()
        .expect_err("zero attempts");
    assert_eq!(err.key(), Some("services.svc.retry.max_attempts"));

    let cache = sdk::cache::CacheConfig::new().ttl(Duration::ZERO);
    let err = ServiceSdk::builder()
        .service("svc", ServiceConfig::new().cache(cache))
        .build()
        .expect_err("zero ttl");
    assert_eq!(err.key(), Some("services.svc.cache.ttl"));

    let err = ServiceSdk::builder()
        .service("svc", ServiceConfig::new().instance("localhost:80"))
        .build()
        .expect_err("no scheme");
    assert_eq!(err.key(), Some("services.svc.instances"));
}

#[test]
fn zero_and_busy_loop_durations_are_refused_everywhere() {
    let err = ServiceSdk::builder()
        .heartbeat_interval(Duration::ZERO)
        .build()
        .expect_err("a zero heartbeat interval would panic the heartbeat task");
    assert_eq!(err.key(), Some("heartbeat_interval"));

    for (text, key) in [
        ("[sdk]\nconnect_timeout = \"0s\"\n", "sdk.connect_timeout"),
        (
            "[services.orders]\ninstances = [\"http://127.0.0.1:1\"]\n[services.orders.health_check]\nenabled = true\ninterval = \"1ns\"\n",
            "services.orders.health_check.interval",
        ),
        (
            "[services.orders]\ninstances = [\"http://127.0.0.1:1\"]\n[services.orders.health_check]\nenabled = true\ntimeout = \"0s\"\n",
            "services.orders.health_check.timeout",
        ),
    ] {
        let err = sdk::SdkConfig::from_toml_str(text)
            .and_then(|config| config.validate().map(|()| config))
            .expect_err(text);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}
