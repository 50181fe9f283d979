//! Secrets never reach errors, logs or `Debug` output: credentials in URLs, values from the
//! environment, query strings, and header names the user declares sensitive.

use crate::support;

use crate::support::{once, Reply, Scripted};
use sdk::{SdkConfig, ServiceConfig, ServiceSdk};

const PASSWORD: &str = "hunter2-SUPERSECRET";

#[test]
fn credentials_in_registry_urls_are_refused_without_printing_them() {
    for (text, key, hint) in [
        (
            format!("[sdk]\nregistry_url = \"http://ops:{PASSWORD}@127.0.0.1:8500\"\n"),
            "sdk.registry_url",
            "registry_token",
        ),
        (
            format!("[sdk]\netcd_endpoints = [\"http://ops:{PASSWORD}@127.0.0.1:2379\"]\n"),
            "sdk.etcd_endpoints",
            "etcd_password",
        ),
    ] {
        let err = SdkConfig::from_toml_str(&text).expect_err("refused as the file is read");
        let message = err.to_string();
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(message.contains(key) && message.contains(hint), "{message}");
    }
}

#[test]
fn a_config_made_in_code_hides_them_too() {
    let mut config = SdkConfig::new();
    config.registry_url = Some(format!("http://ops:{PASSWORD}@127.0.0.1:8500"));
    let shown = format!("{config:?}");
    assert!(!shown.contains(PASSWORD), "Debug: {shown}");
    assert!(
        shown.contains("ops:xxxxx@"),
        "Debug shows the rest: {shown}"
    );
    let err = ServiceSdk::builder()
        .config(config)
        .build()
        .expect_err("credentials in the URL are refused");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
}

#[test]
fn an_instance_url_with_credentials_is_refused_without_printing_them() {
    let err = ServiceSdk::builder()
        .service(
            "svc",
            ServiceConfig::new().instance(format!("http://ops:{PASSWORD}@127.0.0.1:1")),
        )
        .build()
        .expect_err("credentials in the URL");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    let sdk = ServiceSdk::builder().build().expect("valid");
    let err = sdk
        .register_external_service("svc", [format!("http://ops:{PASSWORD}@127.0.0.1:1")])
        .expect_err("credentials in the URL");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
}

#[test]
fn a_value_from_the_environment_is_not_echoed_by_the_error_it_causes() {
    let var = format!("SDK_TEST_SECRET_{}", std::process::id());
    // The only test touching this variable; set before anything reads it.
    std::env::set_var(&var, PASSWORD);
    let text = format!("[services.orders.retry]\nmax_attempts = \"${{{var}}}\"\n");
    let err = SdkConfig::from_toml_str(&text).expect_err("not a number");
    let message = err.to_string();
    assert!(!message.contains(PASSWORD), "{message}");
    assert!(
        message.contains(&format!("${{{var}}}")),
        "says where it came from: {message}"
    );
    assert!(
        message.contains("services.orders.retry.max_attempts"),
        "{message}"
    );
}

#[tokio::test]
async fn a_refused_path_does_not_echo_its_query() {
    let server = Scripted::start(Reply::status(200)).await;
    let sdk = support::sdk_for(&server.url, once());
    let err = sdk
        .get_client("svc")
        .get(&format!("/a/../b?token={PASSWORD}"))
        .send::<()>()
        .await
        .expect_err("a dot segment");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    assert!(err.to_string().contains("/a/../b"), "shows the path: {err}");
}

#[tokio::test]
async fn headers_the_user_names_sensitive_are_never_printed() {
    let server = Scripted::start(Reply::status(500).header("x-session", PASSWORD)).await;
    let sdk = ServiceSdk::builder()
        .sensitive_header(http::HeaderName::from_static("x-session"))
        .service("svc", once().instance(&server.url))
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    let (_, request) = client
        .get("/x")
        .header("private-token", "not-declared")
        .header("x-session", PASSWORD)
        .build()
        .expect("valid");
    let shown = format!("{request:?}");
    assert!(!shown.contains(PASSWORD), "request Debug: {shown}");
    assert!(
        shown.contains("not-declared"),
        "undeclared names still show: {shown}"
    );
    let err = client.get("/x").send::<()>().await.expect_err("500");
    assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");

    let config = SdkConfig::from_toml_str("[sdk]\nsensitive_headers = [\"Private-Token\"]\n")
        .expect("parses");
    assert_eq!(config.sensitive_headers, ["private-token"]);
}
