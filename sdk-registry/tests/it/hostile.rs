//! The registry binary against hostile clients and hostile flags: half-sent requests, more
//! connections than it may hold, empty tokens, out-of-range durations, odd methods and
//! paths, names that would escape a URL.
#![cfg(feature = "server")]

use crate::support;

use std::time::{Duration, Instant};

use crate::support::{
    data_file, run_binary, start_binary, start_binary_logging, start_server, Server,
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A connection that sent half a request and then nothing.
async fn half_request(addr: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    tcp
}

/// How long until the server closes `tcp` (None: still open after `limit`).
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), tcp.read(&mut buf)).await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {} // an error answer before the close
        }
    }
}

fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid())).map_or(0, |dir| dir.count())
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_requests_are_cut_off_and_cannot_starve_health() {
    let server = start_server(
        &data_file("slowloris"),
        90,
        "127.0.0.1:0",
        &["--header-timeout-secs", "1", "--max-connections", "100"],
    )
    .await;
    let mut first = half_request(&server.addr).await;
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(half_request(&server.addr).await);
    }
    assert!(
        open_fds(&server) < 150,
        "connections past the limit are closed on arrival ({} descriptors)",
        open_fds(&server)
    );
    let closed = closed_within(&mut first, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(3)),
        "the header timeout closed a half-sent request ({closed:?})"
    );
    // Heartbeats and /health get through while the attack goes on.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        held.push(half_request(&server.addr).await);
        let answer = http
            .get(format!("{}/health", server.url))
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/health never answered under attack"
        );
    }
    assert!(
        server.logged().contains("connection limit reached"),
        "{}",
        server.logged()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_finishes_gets_a_408() {
    let server = start_server(
        &data_file("slow-body"),
        90,
        "127.0.0.1:0",
        &["--body-timeout-secs", "1"],
    )
    .await;
    let mut tcp = TcpStream::connect(&server.addr).await.expect("connect");
    tcp.write_all(
        b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":",
    )
    .await
    .expect("write");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "a JSON error: {answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_handshake_that_never_comes_is_cut_off() {
    let identity = support::tls::self_signed();
    let dir = std::env::temp_dir().join(format!("sdk-registry-hostile-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &identity.cert_pem).expect("cert");
    std::fs::write(&key, &identity.key_pem).expect("key");
    let server = start_server(
        &data_file("tls-slow"),
        90,
        "127.0.0.1:0",
        &[
            "--header-timeout-secs",
            "1",
            "--tls-cert",
            cert.to_str().expect("path"),
            "--tls-key",
            key.to_str().expect("path"),
        ],
    )
    .await;
    let mut tcp = TcpStream::connect(&server.addr).await.expect("connect");
    tcp.write_all(&[0x16, 0x03, 0x01])
        .await
        .expect("a third of a record header");
    let closed = closed_within(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(3)),
        "closed after the handshake timeout ({closed:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_does_not_wait_for_a_half_sent_request() {
    let mut server = start_server(
        &data_file("shutdown-slow"),
        90,
        "127.0.0.1:0",
        &["--header-timeout-secs", "300", "--shutdown-grace-secs", "2"],
    )
    .await;
    let _held = half_request(&server.addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let status = server.terminate().await;
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the grace period bounds the wait ({:?})",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_required_unless_writes_are_opened() {
    let listen = ["--listen", "127.0.0.1:0"];
    let (status, stderr) = run_binary(&listen, &[]).await;
    assert!(!status.success(), "no token, no flag: refused");
    assert!(stderr.contains("--allow-open-writes"), "{stderr}");

    let (status, stderr) = run_binary(&["--listen", "127.0.0.1:0", "--token", ""], &[]).await;
    assert!(!status.success(), "an empty token is refused");
    assert!(stderr.contains("empty"), "{stderr}");

    let (status, stderr) = run_binary(&listen, &[("SDK_REGISTRY_TOKEN", "")]).await;
    assert!(
        !status.success(),
        "an empty token from the environment is refused"
    );
    assert!(stderr.contains("empty"), "{stderr}");

    let open = start_binary(&["--listen", "127.0.0.1:0", "--allow-open-writes"], None).await;
    let http = reqwest::Client::new();
    let health: Value = http
        .get(format!("{}/health", open.url))
        .send()
        .await
        .expect("up")
        .json()
        .await
        .expect("json");
    assert_eq!(health["writes"], "open");
    let registered = http
        .post(format!("{}/v1/instances", open.url))
        .json(&json!({ "id": "a", "service": "orders", "host": "127.0.0.1", "port": 1 }))
        .send()
        .await
        .expect("up");
    assert_eq!(registered.status(), 201);
    assert!(
        open.logged().contains("writes are open"),
        "{}",
        open.logged()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn durations_out_of_range_are_refused() {
    for (flag, value) in [
        ("--ttl-secs", "18446744073709551615"),
        ("--ttl-secs", "0"),
        ("--health-interval-ms", "1"),
        ("--health-timeout-ms", "0"),
        ("--idle-timeout-secs", "5"),
    ] {
        let (status, stderr) = run_binary(
            &["--listen", "127.0.0.1:0", "--token", "t", flag, value],
            &[],
        )
        .await;
        assert_eq!(status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_answer_is_json() {
    let server = start_server(&data_file("json-errors"), 90, "127.0.0.1:0", &[]).await;
    let http = reqwest::Client::new();
    let url = &server.url;
    let instance = |service: &str, id: &str, host: &str| json!({ "id": id, "service": service, "host": host, "port": 80 });
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (http.patch(format!("{url}/v1/instances")), 405, "method"),
        (http.get(format!("{url}/nowhere")), 404, "endpoint"),
        (
            http.post(format!("{url}/v1/instances"))
                .json(&instance("..", "a", "10.0.0.1")),
            400,
            "service",
        ),
        (
            http.post(format!("{url}/v1/instances"))
                .json(&instance("orders", ".", "10.0.0.1")),
            400,
            "id",
        ),
        (
            http.post(format!("{url}/v1/instances"))
                .json(&instance("orders", "a", "1.2.3.4:99")),
            400,
            "host",
        ),
        (
            http.get(format!("{url}/v1/services/..%2Fx/instances")),
            400,
            "service",
        ),
        (
            http.get(format!("{url}/v1/services/orders/watch?after=minus")),
            400,
            "after",
        ),
        (
            http.put(format!("{url}/v1/services/orders/instances/a/health"))
                .json(&json!({ "health": "great" })),
            400,
            "health",
        ),
    ];
    support::assert_json_errors(cases).await;
    // A path that is not UTF-8, sent by hand (clients refuse to).
    let mut tcp = TcpStream::connect(&server.addr).await.expect("connect");
    tcp.write_all(
        b"GET /v1/services/%FF%FE/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("application/json") && answer.contains("\"error\""),
        "{answer}"
    );
    assert!(
        server.logged().contains("request refused"),
        "refused requests are logged:\n{}",
        server.logged()
    );
    assert!(
        !server.logged().contains("s3cret"),
        "no credential in the log"
    );
}

/// The server binaries log through one set-up that reads `RUST_LOG`: with `warn`, a refused
/// write (401, logged at `warn`) is logged and a request for no endpoint (404, logged at
/// `info`) is not; with `info` both are.
#[tokio::test(flavor = "multi_thread")]
async fn rust_log_sets_what_is_logged() {
    let args = ["--listen", "127.0.0.1:0", "--token", "s3cret"];
    for (level, info_logged) in [("warn", false), ("info", true)] {
        let server = start_binary_logging(&args, None, level).await;
        let http = reqwest::Client::new();
        let missing = http.get(format!("{}/v1/no-such-endpoint", server.url));
        assert_eq!(missing.send().await.expect("answered").status(), 404);
        let write = http.post(format!("{}/v1/instances", server.url)).body("{}");
        assert_eq!(write.send().await.expect("answered").status(), 401);
        // The 401 comes after the 404: once it is in the log, so would the 404 be.
        let seen = support::until(Duration::from_secs(5), || {
            server.logged().contains("status=401")
        })
        .await;
        let logged = server.logged();
        assert!(
            seen,
            "RUST_LOG={level}: the refused write is logged:\n{logged}"
        );
        assert_eq!(
            logged.contains("status=404"),
            info_logged,
            "RUST_LOG={level}:\n{logged}"
        );
    }
}

/// `--config`: the flags in `[server.registry]` of the platform's TOML file (other tables
/// are the SDK's and the other binaries'); a flag on the command line overrides one; a key
/// that names no flag is refused, naming it.
#[tokio::test]
async fn the_config_file_sets_flags_and_a_flag_overrides_them() {
    let dir = sdk_test_support::TempDir::new("registry-config");
    let file = dir.join("platform.toml");
    std::fs::write(
        &file,
        "[server.registry]\nlisten = \"127.0.0.1:0\"\ntoken = \"from-file\"\nprotect_reads = true\n\n\
         [server.events]\ndatabase = \"sqlite:elsewhere.db\"\n",
    )
    .expect("write the file");
    let config = file.to_str().expect("a UTF-8 path");
    let http = reqwest::Client::new();
    let status = |server: &Server, token: Option<&'static str>| {
        let mut request = http.get(format!("{}/v1/services", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("answered").status().as_u16() }
    };

    let server = start_binary(&["--config", config], None).await;
    assert_eq!(
        status(&server, None).await,
        401,
        "protect_reads from the file"
    );
    assert_eq!(status(&server, Some("from-file")).await, 200);
    drop(server);

    let server = start_binary(&["--config", config, "--token", "from-flag"], None).await;
    assert_eq!(
        status(&server, Some("from-file")).await,
        401,
        "the flag wins"
    );
    assert_eq!(status(&server, Some("from-flag")).await, 200);
    drop(server);

    // The guide's example file, as written: the registry takes its table (the address and
    // the data file overridden here by flags).
    let readme = sdk_test_support::readme_curl::docs();
    let at = readme
        .find("\n[server.registry] ")
        .expect("the guide's example file");
    let example = &readme[at..at + readme[at..].find("```").expect("its end")];
    std::fs::write(&file, example).expect("write the file");
    let data = data_file("readme-config");
    let flags = [
        "--config",
        config,
        "--listen",
        "127.0.0.1:0",
        "--token",
        "s3cret",
    ];
    let server = start_binary(&flags, Some(&data)).await;
    let health = http.get(format!("{}/health", server.url)).send().await;
    assert_eq!(health.expect("answered").status(), 200);
    drop(server);

    std::fs::write(&file, "[server.registry]\nttl = 30\n").expect("write the file");
    let (status, stderr) = run_binary(&["--config", config], &[]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown key `server.registry.ttl`"),
        "{stderr}"
    );
}
