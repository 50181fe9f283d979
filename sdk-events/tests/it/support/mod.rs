//! Helpers of the event bus's tests: the real `sdk-events` binary as a process, on a fresh
//! SQLite file or a fresh PostgreSQL database, and a real webhook receiver.
#![allow(dead_code)]

#[allow(unused_imports)] // each test file uses some of them
pub(crate) use sdk_test_support::{poll, until, Seen};

use std::{path::PathBuf, time::Duration};

use sdk_test_support::{Reply, Running, Scripted};
use serde_json::{json, Value};
use tokio::process::Command;

/// The admin token every test bus runs with.
pub(crate) const ADMIN: &str = "admin-s3cret";

/// A database for one test: a SQLite file in a directory of its own, or a PostgreSQL
/// database created for it (and dropped after).
pub(crate) struct Database {
    pub(crate) url: String,
    pub(crate) name: &'static str,
    cleanup: Option<(String, String)>,
    dir: Option<PathBuf>,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin, db)) = self.cleanup.take() {
            let _ = std::process::Command::new("psql")
                .args([
                    &admin,
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}_{}_{:08x}", std::process::id(), fastrand::u32(..))
}

/// A fresh SQLite database.
pub(crate) fn sqlite() -> Database {
    let dir = std::env::temp_dir().join(unique("sdk-events-test"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    Database {
        url: format!("sqlite:{}", dir.join("events.db").display()),
        name: "sqlite",
        cleanup: None,
        dir: Some(dir),
    }
}

/// The PostgreSQL server to test on (`SDK_TEST_POSTGRES`, default the machine's).
fn postgres_server() -> String {
    std::env::var("SDK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh PostgreSQL database, or `None` (with the reason printed) when there is no
/// server; under `CI` a missing server fails the test.
pub(crate) fn postgres() -> Option<Database> {
    let server = postgres_server();
    let db = unique("sdk_events_test");
    let admin = format!("{server}/postgres");
    let created = std::process::Command::new("psql")
        .args([&admin, "-q", "-c", &format!("CREATE DATABASE {db}")])
        .output();
    match created {
        Ok(out) if out.status.success() => Some(Database {
            url: format!("{server}/{db}"),
            name: "postgres",
            cleanup: Some((admin, db)),
            dir: None,
        }),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            sdk_test_support::skip(format_args!(
                "the PostgreSQL half: {server} is unusable: {why}"
            ));
            None
        }
    }
}

impl Database {
    /// Runs `sql` on the PostgreSQL server's admin database; its unaligned output.
    pub(crate) fn psql(&self, sql: &str) -> String {
        let Some((admin, _)) = &self.cleanup else {
            panic!("not a PostgreSQL database");
        };
        let out = std::process::Command::new("psql")
            .args([admin, "-Atq", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The PostgreSQL database's name.
    pub(crate) fn pg_name(&self) -> &str {
        self.cleanup.as_ref().map_or("", |(_, db)| db.as_str())
    }
}

/// SQLite, and PostgreSQL when there is one.
pub(crate) fn databases() -> Vec<Database> {
    let mut all = vec![sqlite()];
    all.extend(postgres());
    all
}

/// A running `sdk-events` process (killed when dropped); its API through [`Api`].
pub(crate) struct Bus {
    pub(crate) running: Running,
    pub(crate) api: Api,
}

impl std::ops::Deref for Bus {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// Calls to a bus's API at `url`, wherever the bus runs (a process, or in the test's own
/// runtime).
pub(crate) struct Api {
    pub(crate) url: String,
}

/// Arguments that make the bus quick to test: a short schedule and lease (each
/// overridden by the same flag in a test's own arguments).
pub(crate) const QUICK: &[&str] = &[
    "--schedule",
    "100ms,200ms",
    "--poll-ms",
    "50",
    "--lease-secs",
    "2",
    "--attempt-timeout-ms",
    "1500",
];

/// The binary, logging at `info`, with none of the environment variables it reads.
fn bus_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdk-events"));
    command
        .env_remove("SDK_EVENTS_TOKEN")
        .env_remove("SDK_EVENTS_DATABASE")
        .env_remove("SDK_EVENTS_CONFIG")
        .env("RUST_LOG", "info");
    command
}

impl Bus {
    /// Starts the binary on `database` with the admin token, `QUICK` and `extra`.
    pub(crate) async fn start(database: &Database, extra: &[&str]) -> Bus {
        Bus::start_on(database, "127.0.0.1:0", extra).await
    }

    /// Starts the binary listening on `listen`, letting handlers be on loopback (where
    /// the tests' receivers are).
    pub(crate) async fn start_on(database: &Database, listen: &str, extra: &[&str]) -> Bus {
        let loopback = ["--allow-handler-network", "127.0.0.0/8"];
        let extra: Vec<&str> = extra.iter().copied().chain(loopback).collect();
        Bus::start_with_policy(database, listen, &extra).await
    }

    /// Starts the binary with the default handler policy: internal addresses refused.
    pub(crate) async fn start_strict(database: &Database, extra: &[&str]) -> Bus {
        Bus::start_with_policy(database, "127.0.0.1:0", extra).await
    }

    async fn start_with_policy(database: &Database, listen: &str, extra: &[&str]) -> Bus {
        let mut command = bus_command();
        command
            .args([
                "--listen",
                listen,
                "--database",
                &database.url,
                "--token",
                ADMIN,
            ])
            .args(
                QUICK
                    .chunks(2)
                    .filter(|pair| !extra.contains(&pair[0]))
                    .flatten(),
            )
            .args(extra);
        Bus::spawn(command).await
    }

    /// Starts the binary with only `--config file` and `extra`: every other setting from
    /// the file's `[server.events]`.
    pub(crate) async fn start_with_config(file: &std::path::Path, extra: &[&str]) -> Bus {
        let mut command = bus_command();
        command.arg("--config").arg(file).args(extra);
        Bus::spawn(command).await
    }

    /// Starts `command` and waits for it to listen.
    async fn spawn(command: Command) -> Bus {
        let running = Running::start(command, "the bus", Duration::from_secs(20)).await;
        Bus {
            api: Api {
                url: format!("http://{}", running.addr),
            },
            running,
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// `kill -9`.
    pub(crate) async fn kill9(&mut self) {
        self.running.kill9().await;
    }

    /// SIGTERM, and the exit (within 20 s).
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        self.running.terminate().await
    }

    /// What it logged so far.
    pub(crate) fn logged(&self) -> String {
        self.running.logged()
    }
}

impl Api {
    /// A call with a token (`None`: without), answering status and JSON body.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let http = reqwest::Client::new();
        let mut request = http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the bus answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or_else(|_| {
            assert!(text.is_empty(), "not JSON: {text}");
            Value::Null
        });
        (status, value)
    }

    /// An admin POST that must answer `expect`.
    pub(crate) async fn admin_post(&self, path: &str, body: Value, expect: u16) -> Value {
        let (status, answer) = self
            .call(reqwest::Method::POST, path, Some(ADMIN), Some(body))
            .await;
        assert_eq!(status, expect, "{path}: {answer}");
        answer
    }

    /// An admin GET.
    pub(crate) async fn admin_get(&self, path: &str) -> Value {
        let (status, answer) = self
            .call(reqwest::Method::GET, path, Some(ADMIN), None)
            .await;
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }

    /// Creates an application, returning its token and secret.
    pub(crate) async fn application(&self, name: &str) -> (String, String) {
        let answer = self
            .admin_post(
                "/v1/applications",
                json!({"application": name, "address": format!("https://{name}.example.com")}),
                201,
            )
            .await;
        (
            answer["token"].as_str().expect("token").to_owned(),
            answer["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// Creates an action of `application` with `schema`.
    pub(crate) async fn action(&self, action: &str, application: &str, schema: Value) {
        self.admin_post(
            "/v1/actions",
            json!({"action": action, "application": application, "schemata": schema}),
            201,
        )
        .await;
    }

    /// Subscribes `application`'s handler `url` to `action`; returns the secret.
    pub(crate) async fn subscribe(
        &self,
        application: &str,
        name: &str,
        action: &str,
        url: &str,
    ) -> String {
        let answer = self
            .admin_post(
                "/v1/subscriptions",
                json!({"application": application, "subscription": name, "action": action, "handler": url}),
                201,
            )
            .await;
        answer["secret"].as_str().expect("secret").to_owned()
    }

    /// `user-service` publishing `user.created` (the reference's schema) to `handler`,
    /// subscription `welcome` of `email-service`: the publisher's token and the
    /// subscription's secret.
    pub(crate) async fn welcome(&self, handler: &str) -> (String, String) {
        let (token, _) = self.application("user-service").await;
        self.application("email-service").await;
        self.action("user.created", "user-service", user_schema())
            .await;
        let secret = self
            .subscribe("email-service", "welcome", "user.created", handler)
            .await;
        (token, secret)
    }

    /// Publishes with `token`: status and answer.
    pub(crate) async fn publish(&self, token: &str, action: &str, payload: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/v1/events",
            Some(token),
            Some(json!({"action": action, "payload": payload})),
        )
        .await
    }

    /// All deliveries of `subscription` with `status` (every page).
    pub(crate) async fn deliveries(&self, subscription: &str, status: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .admin_get(&format!(
                    "/v1/deliveries?subscription={subscription}&status={status}&after={after}&limit=1000"
                ))
                .await;
            let rows = page["deliveries"].as_array().expect("deliveries").clone();
            all.extend(rows);
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => return all,
            }
        }
    }
}

/// A scripted answer: status and an optional `Retry-After`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer(pub(crate) u16, pub(crate) Option<u64>);

/// A webhook receiver: the one scripted upstream, recording every delivery and answering
/// from its script (then 204). Deliveries go to `<url>/hook`.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    scripted: Scripted,
}

impl Receiver {
    /// Starts one on `127.0.0.1:0`.
    pub(crate) async fn start() -> Receiver {
        let scripted = Scripted::start(Reply::status(204)).await;
        Receiver {
            url: format!("{}/hook", scripted.url),
            scripted,
        }
    }

    /// Answers the next deliveries so, in order.
    pub(crate) fn then(&self, answers: &[Answer]) {
        for Answer(status, after) in answers {
            let mut reply = Reply::status(*status);
            if let Some(after) = after {
                reply = reply.header("retry-after", &after.to_string());
            }
            self.scripted.then(reply);
        }
    }

    /// Answers every later delivery only after `delay`.
    pub(crate) fn slow(&self, delay: Duration) {
        self.scripted.set_fallback(Reply::status(204).delay(delay));
    }

    /// What arrived at `/hook` so far (a handler elsewhere on this server is not this
    /// receiver's).
    pub(crate) fn seen(&self) -> Vec<Seen> {
        let mut seen = self.scripted.seen();
        seen.retain(|request| request.uri == "/hook");
        seen
    }

    /// Waits (up to `within`) until at least `n` deliveries arrived; what arrived.
    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<Seen> {
        until(within, || self.seen().len() >= n).await;
        self.seen()
    }
}

/// The reference's user schema.
pub(crate) fn user_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "user_id": {"type": "string"},
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string"},
            "plan": {"type": "string", "enum": ["free", "premium"]}
        },
        "required": ["user_id", "email", "name"]
    })
}

/// A payload that matches it.
pub(crate) fn user(n: usize) -> Value {
    json!({"user_id": format!("u{n}"), "email": format!("u{n}@example.com"), "name": "Ann", "plan": "free"})
}
