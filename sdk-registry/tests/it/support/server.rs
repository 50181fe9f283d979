//! The registry binary as a child process.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use sdk_test_support::{run_to_exit, Running};
use tokio::process::Command;

/// A running `sdk-registry` process (killed when dropped): the process, its address, its
/// log ([`Running`]), and its URL.
pub(crate) struct Server {
    pub(crate) running: Running,
    /// `http://host:port`.
    pub(crate) url: String,
}

impl std::ops::Deref for Server {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.running
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.running
    }
}

/// Starts the binary on `listen` with token `s3cret`, the TTL and the snapshot file given,
/// and waits for its `listening on` line.
pub(crate) async fn start_server(
    data: &Path,
    ttl_secs: u64,
    listen: &str,
    extra: &[&str],
) -> Server {
    let ttl = ttl_secs.to_string();
    let mut args = vec!["--listen", listen, "--ttl-secs", &ttl, "--token", "s3cret"];
    args.extend_from_slice(extra);
    start_binary(&args, Some(data)).await
}

/// Starts the binary with exactly `args` (and `--data data`), and waits for its
/// `listening on` line.
pub(crate) async fn start_binary(args: &[&str], data: Option<&Path>) -> Server {
    start_binary_logging(args, data, "info").await
}

/// [`start_binary`] with `RUST_LOG` set to `log`.
pub(crate) async fn start_binary_logging(args: &[&str], data: Option<&Path>, log: &str) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdk-registry"));
    command.args(args);
    if let Some(data) = data {
        command.arg("--data").arg(data);
    }
    command
        .env_remove("SDK_REGISTRY_TOKEN")
        .env("RUST_LOG", log);
    let running = Running::start(command, "the registry", Duration::from_secs(10)).await;
    Server {
        url: format!("http://{}", running.addr),
        running,
    }
}

/// Runs the binary with `args` and `env` until it exits (within 10 s): its exit status
/// and what it printed on stderr.
pub(crate) async fn run_binary(
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdk-registry"));
    command.args(args).env_remove("SDK_REGISTRY_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    run_to_exit(command, Duration::from_secs(10)).await
}

/// A fresh snapshot path in a directory of its own.
pub(crate) fn data_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sdk-registry-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("registry.db")
}

/// The token every test server is started with.
pub(crate) const TOKEN: &str = "s3cret";

impl Server {
    /// `method path` with the token (and a JSON body): the status and the JSON answer
    /// (`Null` for an empty one).
    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.expect("reachable");
        let status = answer.status().as_u16();
        let bytes = answer.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// Marks `service/id` with `health`; returns the status.
    pub(crate) async fn mark(
        &self,
        http: &reqwest::Client,
        service: &str,
        id: &str,
        health: &str,
    ) -> u16 {
        let path = format!("/v1/services/{service}/instances/{id}/health");
        let body = serde_json::json!({ "health": health });
        self.send(http, reqwest::Method::PUT, &path, Some(&body))
            .await
            .0
    }

    /// Deregisters `service/id`; returns the status.
    pub(crate) async fn remove(&self, http: &reqwest::Client, service: &str, id: &str) -> u16 {
        let path = format!("/v1/services/{service}/instances/{id}");
        self.send(http, reqwest::Method::DELETE, &path, None)
            .await
            .0
    }
}

/// Sends each request with the token and checks its status, and that its answer is a
/// JSON error whose message mentions the given text.
pub(crate) async fn assert_json_errors(cases: Vec<(reqwest::RequestBuilder, u16, &str)>) {
    for (request, status, mentions) in cases {
        let answer = request.bearer_auth(TOKEN).send().await.expect("up");
        assert_eq!(answer.status(), status);
        let body: serde_json::Value = answer.json().await.expect("a JSON error body");
        let message = body["error"].as_str().expect("an error message");
        assert!(message.contains(mentions), "{status}: {message}");
    }
}
