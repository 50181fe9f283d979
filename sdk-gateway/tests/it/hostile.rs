//! The gateway against hostile clients: paths that an upstream decodes into another route
//! (nginx behind it, as the drill that found the bypass), two `Host` headers, and uploads
//! that break off or stall, which must never count against the service.

use std::time::Duration;

use crate::support::{nginx::Nginx, raw_get, tokens, upstream::Upstream, Gateway};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Paths that reach nginx's protected `/users/` through the public route once nginx
/// decodes them, in every spelling the drill found and more.
const BYPASSES: [&str; 9] = [
    "/api/n/..%2fusers%2f42",
    "/api/n/..%2Fusers%2F42",
    "/api/n/%2e%2e%2fusers%2f42",
    "/api/n/%2e%2e/users/42",
    "/api/n/x/..%2f..%2fusers%2f42",
    "/api/n/%252e%252e%252fusers%252f42",
    "/api/n/..;/users/42",
    "/api/n/..%5cusers%5c42",
    "/api/n/%c0%ae%c0%ae/users/42",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_separators_and_dot_segments_never_reach_an_upstream() {
    let Some(nginx) = Nginx::start(
        r#"    location /users/ { return 200 "protected $uri"; }
    location /public/ { return 200 "public $uri"; }
    location / { return 404 "none $uri"; }"#,
    )
    .await
    else {
        return;
    };
    // The premise: nginx itself serves the protected location for an encoded climb.
    let (status, body) = raw_get(&nginx.addr, "/public/..%2fusers%2f42", &[]).await;
    assert_eq!((status, body.as_str()), (200, "protected /users/42"));

    let gateway = Gateway::start(&format!(
        r#"
[services.n]
instances = ["http://{nginx}"]

[routes.users]
path = "/api/n-users/{{*rest}}"
service = "n"
rewrite = "/users/{{rest}}"
protected = true

[routes.public]
path = "/api/n/{{*rest}}"
service = "n"
rewrite = "/public/{{rest}}"

[gateway.jwt]
hs256_secret = "{secret}"
"#,
        nginx = nginx.addr,
        secret = tokens::SECRET
    ))
    .await;
    let addr = gateway.addr();
    assert_eq!(
        raw_get(addr, "/api/n/hello", &[]).await,
        (200, "public /public/hello".to_owned())
    );
    assert_eq!(raw_get(addr, "/api/n-users/42", &[]).await.0, 401);
    let token = format!("Bearer {}", tokens::hs256(&tokens::claims("u", json!({}))));
    assert_eq!(
        raw_get(addr, "/api/n-users/42", &[("authorization", &token)]).await,
        (200, "protected /users/42".to_owned())
    );
    for path in BYPASSES {
        let (status, body) = raw_get(addr, path, &[]).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("ambiguous") || e.contains("dot segment")),
            "{path}: {body}"
        );
    }
    // An encoded value that stays one segment, in the query or the path, still goes through.
    assert_eq!(
        raw_get(addr, "/api/n/report%20v2?next=..%2fusers", &[]).await,
        (200, "public /public/report v2".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_refused() {
    let upstream = Upstream::start("u").await;
    let gateway = Gateway::start(&format!(
        "[services.u]\ninstances = [\"http://{}\"]\n\n[routes.all]\npath = \"/{{*rest}}\"\nservice = \"u\"\n",
        upstream.addr
    ))
    .await;
    let (status, body) = raw_get(gateway.addr(), "/x", &[("host", "evil.example")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Host"), "{body}");
    assert_eq!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(raw_get(gateway.addr(), "/x", &[]).await.0, 200);
}

/// A gateway in front of one upload service, with routes whose timeouts are shorter
/// (`quick`, 500 ms) and longer (`slow`, 10 s) than the gateway's 1 s body timeout.
async fn upload_gateway(upstream: &Upstream) -> Gateway {
    Gateway::start_with(
        &format!(
            r#"
[services.u]
instances = ["http://{addr}"]

[routes.quick]
path = "/quick/{{*rest}}"
service = "u"
rewrite = "/{{rest}}"
timeout = "500ms"

[routes.slow]
path = "/slow/{{*rest}}"
service = "u"
rewrite = "/{{rest}}"
timeout = "10s"
"#,
            addr = upstream.addr
        ),
        &["--body-timeout-secs", "1"],
    )
    .await
}

/// `PUT path` announcing 1 MB, sending 1 KiB, then: `abort` closes the sending side, else
/// the client just stops sending. The gateway's status.
async fn broken_upload(addr: &str, path: &str, abort: bool) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 1000000\r\ncontent-type: application/octet-stream\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&[7u8; 1024]).await.expect("some body");
    if abort {
        stream.shutdown().await.expect("shutdown");
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 1024];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Every route's breaker as `/health` reports it.
async fn breakers(gateway: &Gateway) -> Vec<(String, String)> {
    let health = gateway.json("/health").await;
    health["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap_or_default().to_owned(),
                r["breaker"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn good_upload(gateway: &Gateway, route: &str) -> u16 {
    reqwest::Client::new()
        .put(format!("{}/{route}/upload", gateway.url))
        .body(vec![1u8; 100_000])
        .send()
        .await
        .expect("the gateway answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_uploads_never_open_the_breaker() {
    let upstream = Upstream::start("u").await;
    let gateway = upload_gateway(&upstream).await;
    // Ten aborted uploads, twice the breaker's threshold of 5.
    let aborted = futures_util::future::join_all(
        (0..10).map(|_| broken_upload(gateway.addr(), "/slow/upload", true)),
    )
    .await;
    assert!(aborted.iter().all(|&s| s == 400), "{aborted:?}");
    assert_eq!(good_upload(&gateway, "slow").await, 200);
    assert!(
        breakers(&gateway).await.iter().all(|(_, b)| b == "closed"),
        "{:?}",
        breakers(&gateway).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_time_out_as_the_clients_and_never_open_the_breaker() {
    let upstream = Upstream::start("u").await;
    let gateway = upload_gateway(&upstream).await;
    // The route's 500 ms runs out first on `quick`, the gateway's 1 s body timeout on
    // `slow`: both are the client's, a 408, six times each.
    let stalled = futures_util::future::join_all((0..12).map(|i| {
        let route = if i % 2 == 0 {
            "/quick/upload"
        } else {
            "/slow/upload"
        };
        broken_upload(gateway.addr(), route, false)
    }))
    .await;
    assert!(stalled.iter().all(|&s| s == 408), "{stalled:?}");
    for route in ["quick", "slow"] {
        assert_eq!(good_upload(&gateway, route).await, 200, "{route}");
    }
    assert!(
        breakers(&gateway).await.iter().all(|(_, b)| b == "closed"),
        "{:?}",
        breakers(&gateway).await
    );
}
