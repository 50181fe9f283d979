//! What the gateway's tests stand on: the `sdk-gateway` binary as a process, upstream
//! services (axum on 127.0.0.1:0), the registry server in the test's runtime, token
//! makers and a JWKS server.

#![allow(dead_code, unreachable_pub)]

pub use sdk_test_support::{poll, TempDir};

pub mod nginx;
pub mod tokens;
pub mod upstream;

use std::{sync::Arc, time::Duration};

use sdk_test_support::{run_to_exit, Running};
use tokio::process::Command;

/// A running `sdk-gateway` process (killed when dropped): the process, its address and its
/// log ([`Running`]), and its URL.
pub struct Gateway {
    pub running: Running,
    /// `http://127.0.0.1:port`.
    pub url: String,
    _dir: TempDir,
}

impl std::ops::Deref for Gateway {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.running
    }
}

impl Gateway {
    /// Starts the binary with `config` as its TOML file and waits for it to listen.
    pub async fn start(config: &str) -> Gateway {
        Self::start_with(config, &[]).await
    }

    /// Starts the binary with `config` and extra arguments.
    pub async fn start_with(config: &str, extra: &[&str]) -> Gateway {
        let dir = TempDir::new("gateway");
        let mut command = gateway_command(&dir, config);
        command.args(extra).env("RUST_LOG", "info");
        let running = Running::start(command, "the gateway", Duration::from_secs(20)).await;
        Gateway {
            url: format!("http://{}", running.addr),
            running,
            _dir: dir,
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.running.addr
    }

    /// `GET path` on the gateway: the body as text.
    pub async fn text(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("the gateway answers")
            .text()
            .await
            .expect("a text body")
    }

    /// `GET path` on the gateway: the body as JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.text(path).await).expect("a JSON body")
    }
}

/// Runs the binary with `config` until it exits (within 20 s): status and stderr.
pub async fn run_gateway(config: &str) -> (std::process::ExitStatus, String) {
    let dir = TempDir::new("gateway-fails");
    run_to_exit(gateway_command(&dir, config), Duration::from_secs(20)).await
}

/// The binary with `config` written to `dir` as its file, on a free loopback port.
fn gateway_command(dir: &TempDir, config: &str) -> Command {
    let file = dir.join("gateway.toml");
    std::fs::write(&file, config).expect("write the config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdk-gateway"));
    command
        .arg("--config")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SDK_GATEWAY_CONFIG");
    command
}

/// The registry server, in the test's runtime, writes open.
pub struct Registry {
    pub url: String,
    pub registry: Arc<sdk_registry::server::Registry>,
}

impl Registry {
    pub async fn start() -> Registry {
        let registry = sdk_registry::server::Registry::open(sdk_registry::server::ServerConfig {
            open_writes: true,
            ..Default::default()
        })
        .await
        .expect("open the registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = sdk_registry::server::router(registry.clone());
        tokio::spawn(sdk_registry::server::serve(
            listener,
            router,
            None,
            sdk_registry::server::Limits::default(),
            std::future::pending(),
        ));
        Registry { url, registry }
    }

    /// Registers `service` at `addr` as `id`.
    pub async fn register(&self, service: &str, id: &str, addr: std::net::SocketAddr) {
        let instance = sdk_registry::ServiceInstance::new(service, addr).with_id(id);
        let status = reqwest::Client::new()
            .post(format!("{}/v1/instances", self.url))
            .json(&instance)
            .send()
            .await
            .expect("registry reachable")
            .status();
        assert_eq!(status, 201, "registered {service}/{id}");
    }
}

pub use sdk_test_support::required;

/// The peak resident memory of process `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// `GET path` sent as written (no client library normalizes it), with `headers`: the
/// status and the body.
pub async fn raw_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
