//! The registry binary as a child process.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A running `sdk-registry` process (killed when dropped).
pub(crate) struct Server {
    pub(crate) child: Child,
    /// `http://host:port`.
    pub(crate) url: String,
    /// `host:port`.
    pub(crate) addr: String,
    /// Everything the server has logged (stderr) so far.
    pub(crate) log: Arc<Mutex<String>>,
}

impl Server {
    /// The log so far.
    pub(crate) fn logged(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM and returns the exit status, which must come within 10 s.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill -TERM");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exits within 10 s of SIGTERM")
            .expect("exit status")
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
    let mut child = command
        .env_remove("SDK_REGISTRY_TOKEN")
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the registry binary");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = sink.lock().expect("log");
            log.push_str(&line);
            log.push('\n');
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the server starts within 10 s")
        .expect("read stdout")
        .expect("a line");
    let addr = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    Server {
        child,
        url: format!("http://{addr}"),
        addr,
        log,
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
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the binary exits within 10 s")
    .expect("run the registry binary");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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
