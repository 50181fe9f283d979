//! The gateway binary in front of real services: routing and rewrites, the headers that
//! cross, the JSON answers it gives itself, tokens (HS256, JWKS rotation, algorithm
//! confusion), WebSockets, a killed instance routed around, health and metrics.

use crate::support;
use sdk_test_support::readme_curl;

use std::time::Duration;

use crate::support::{
    tokens::{self, Jwks},
    upstream::Upstream,
    Gateway, Registry,
};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{
    self, client::IntoClientRequest as _, protocol::frame::coding::CloseCode,
};

/// The issue's routes, services found through `registry`, with `jwt` as `[gateway.jwt]`.
fn config(registry: &str, jwt: &str) -> String {
    format!(
        r#"
[sdk]
registry_url = "{registry}"

[defaults]
timeout = "5s"

[defaults.retry]
initial_backoff = "10ms"

[routes.users]
path = "/api/users/{{user_id}}"
service = "user-service"
rewrite = "/users/{{user_id}}"
protected = true
methods = ["GET", "DELETE"]

[routes.orders]
path = "/api/orders"
service = "order-service"
rewrite = "/orders"
protected = true
scopes = ["orders:write"]
methods = ["POST"]

[routes.products]
path = "/api/products"
service = "product-service"
rewrite = "/products"

[routes.ws]
path = "/ws/{{service}}"
service = "{{service}}"
rewrite = "/ws"
websocket = true

[gateway.jwt]
{jwt}
forward_claims = {{ sub = "x-user-id" }}
leeway = "30s"

[gateway.clients]
dashboard_url = "{registry}/"
"#
    )
}

fn hs256_only() -> String {
    format!("hs256_secret = \"{}\"", tokens::SECRET)
}

/// A registry with one instance each of user-, order- and product-service, and a gateway.
async fn setup(jwt: &str) -> (Registry, Vec<Upstream>, Gateway) {
    let registry = Registry::start().await;
    let mut upstreams = Vec::new();
    for service in ["user-service", "order-service", "product-service"] {
        let upstream = Upstream::start(service).await;
        registry
            .register(service, &format!("{service}-1"), upstream.addr)
            .await;
        upstreams.push(upstream);
    }
    let gateway = Gateway::start(&config(&registry.url, jwt)).await;
    (registry, upstreams, gateway)
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_rewrite_and_forward_the_right_headers() {
    let (_registry, _upstreams, gateway) = setup(&hs256_only()).await;
    let http = reqwest::Client::new();
    let token = tokens::hs256(&tokens::claims("user-7", json!({})));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = http
        .get(format!("{}/api/users/42?fields=name", gateway.url))
        .bearer_auth(&token)
        .header("traceparent", traceparent)
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret-of-this-hop")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("x-user-id", "someone-else")
        .header("x-forwarded-for", "6.6.6.6")
        .send()
        .await
        .expect("gateway reachable");
    let request_id = answer.headers().get("x-request-id").cloned();
    let (status, seen) = json_of(answer).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["instance"], "user-service");
    assert_eq!(seen["path"], "/users/42");
    assert_eq!(seen["query"], "fields=name");
    let headers = &seen["headers"];
    // The claim, not what the client claimed.
    assert_eq!(headers["x-user-id"], "user-7");
    // A client that is not a trusted proxy cannot forge its address.
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], gateway.addr());
    assert!(
        headers.get("x-hop").is_none(),
        "a header Connection names stays behind"
    );
    assert!(headers.get("proxy-authorization").is_none());
    assert_ne!(
        headers["host"],
        gateway.addr(),
        "the service gets its own host"
    );
    // The trace goes on: same trace id, a new parent.
    let forwarded = headers["traceparent"].as_str().expect("traceparent");
    assert_eq!(&forwarded[..36], &traceparent[..36]);
    assert_ne!(forwarded, traceparent);
    // One request id, on both sides.
    let id = headers["x-request-id"].as_str().expect("a request id");
    assert_eq!(id.len(), 32);
    assert_eq!(
        request_id
            .expect("answered with the id")
            .to_str()
            .expect("ascii"),
        id
    );
    // A client's own request id is kept.
    let answer = http
        .get(format!("{}/api/products?page=2", gateway.url))
        .header("x-request-id", "client-chosen-1")
        .send()
        .await
        .expect("reachable");
    let (status, seen) = json_of(answer).await;
    assert_eq!(status, 200);
    assert_eq!(seen["instance"], "product-service");
    assert_eq!(seen["path"], "/products");
    assert_eq!(seen["headers"]["x-request-id"], "client-chosen-1");
}

/// Requests the gateway refuses, each with its status and a word its error must say: no
/// token, a malformed, forged, expired or not-yet-valid one, a missing scope, a method the
/// route does not take, no route, an unknown service.
fn refusal_cases(
    http: &reqwest::Client,
    base: &str,
    valid: &str,
) -> Vec<(reqwest::RequestBuilder, u16, &'static str)> {
    let url = |path: &str| format!("{base}{path}");
    let reader = tokens::hs256(&tokens::claims("u", json!({ "scope": "orders:read" })));
    let expired = tokens::hs256(&tokens::claims("u", json!({ "exp": tokens::now() - 120 })));
    let not_yet = tokens::hs256(&tokens::claims("u", json!({ "nbf": tokens::now() + 300 })));
    let forged = tokens::hs256_with(
        b"another-secret-that-is-also-32-bytes-long",
        &tokens::claims("u", json!({})),
    );
    vec![
        (
            http.get(url("/api/users/1")),
            401,
            "bearer token is required",
        ),
        (
            http.get(url("/api/users/1")).bearer_auth("not.a.token"),
            401,
            "not valid",
        ),
        (
            http.get(url("/api/users/1")).bearer_auth(&forged),
            401,
            "not valid",
        ),
        (
            http.get(url("/api/users/1")).bearer_auth(&expired),
            401,
            "not valid",
        ),
        (
            http.get(url("/api/users/1")).bearer_auth(&not_yet),
            401,
            "not valid",
        ),
        (
            http.post(url("/api/orders"))
                .bearer_auth(&reader)
                .json(&json!({})),
            403,
            "orders:write",
        ),
        (
            http.put(url("/api/users/1")).bearer_auth(valid),
            405,
            "method",
        ),
        (http.get(url("/nowhere")), 404, "no route"),
        (http.get(url("/ws/no-such-service")), 503, "unknown service"),
    ]
}

/// Sends `request` and checks the JSON error: `expected`, saying `says`, with
/// `WWW-Authenticate` on a 401 and `Allow` on a 405.
async fn assert_refused(request: reqwest::RequestBuilder, expected: u16, says: &str) {
    let answer = request.send().await.expect("reachable");
    let www = answer.headers().get("www-authenticate").cloned();
    let allow = answer.headers().get("allow").cloned();
    let (status, body) = json_of(answer).await;
    assert_eq!(status, expected, "{body}");
    let error = body["error"].as_str().expect("a JSON error");
    assert!(
        error.to_lowercase().contains(says),
        "{error:?} should mention {says:?}"
    );
    if status == 401 {
        assert_eq!(www.expect("WWW-Authenticate"), "Bearer");
    }
    if status == 405 {
        assert_eq!(allow.expect("Allow"), "GET, DELETE");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_with_the_right_status() {
    let (registry, _upstreams, gateway) = setup(&hs256_only()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", gateway.url);
    let valid = tokens::hs256(&tokens::claims(
        "u",
        json!({ "scope": "orders:read orders:write" }),
    ));
    let in_leeway = tokens::hs256(&tokens::claims("u", json!({ "exp": tokens::now() - 5 })));
    for (request, expected, says) in refusal_cases(&http, &gateway.url, &valid) {
        assert_refused(request, expected, says).await;
    }
    // A dot segment (client libraries remove them, so sent raw): never forwarded.
    let auth = format!("Bearer {valid}");
    for path in ["/api/users/..", "/api/users/%2e%2E"] {
        let (status, body) =
            support::raw_get(gateway.addr(), path, &[("authorization", &auth)]).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("dot segment"), "{body}");
    }
    // Within the leeway, and with the scope: through.
    let answer = http
        .get(url("/api/users/1"))
        .bearer_auth(&in_leeway)
        .send()
        .await
        .expect("reachable");
    assert_eq!(answer.status(), 200);
    let answer = http
        .post(url("/api/orders"))
        .bearer_auth(&valid)
        .json(&json!({"item": 1}))
        .send()
        .await
        .expect("reachable");
    let (status, seen) = json_of(answer).await;
    assert_eq!(status, 200);
    assert_eq!(
        (seen["method"].as_str(), seen["body_len"].as_u64()),
        (Some("POST"), Some(10))
    );
    // A service with no instance left: 503.
    registry.registry.backend().evict_expired();
    let _ = reqwest::Client::new()
        .delete(format!(
            "{}/v1/services/product-service/instances/product-service-1",
            registry.url
        ))
        .send()
        .await
        .expect("deregistered");
    let mut status = 0;
    for _ in 0..50 {
        status = http
            .get(url("/api/products"))
            .send()
            .await
            .expect("reachable")
            .status()
            .as_u16();
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 503, "no instance: service unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_rotate_and_unknown_kids_refetch_within_bounds() {
    let jwks = Jwks::start(vec![
        tokens::jwk(tokens::RSA_A, jsonwebtoken::Algorithm::RS256, "a"),
        tokens::jwk(tokens::EC_A, jsonwebtoken::Algorithm::ES256, "e"),
    ])
    .await;
    let jwt = format!("jwks_url = \"{}\"\njwks_min_refetch = \"500ms\"", jwks.url);
    let (_registry, _upstreams, gateway) = setup(&jwt).await;
    let http = reqwest::Client::new();
    let get = |token: String| {
        http.get(format!("{}/api/users/1", gateway.url))
            .bearer_auth(token)
            .send()
    };
    let claims = tokens::claims("rotated", json!({}));
    assert_eq!(
        get(tokens::rs256(tokens::RSA_A, "a", &claims))
            .await
            .expect("up")
            .status(),
        200
    );
    assert_eq!(
        get(tokens::es256(tokens::EC_A, "e", &claims))
            .await
            .expect("up")
            .status(),
        200
    );
    let fetched = jwks.fetches();
    // A key the set does not have yet: refused, and made-up kids cost at most one fetch
    // per jwks_min_refetch however many arrive.
    let b = tokens::rs256(tokens::RSA_B, "b", &claims);
    for _ in 0..20 {
        assert_eq!(get(b.clone()).await.expect("up").status(), 401);
    }
    assert!(
        jwks.fetches() - fetched <= 1,
        "{} fetches for one unknown kid",
        jwks.fetches() - fetched
    );
    // The provider rotates: b is published (a kept). The next token naming b fetches again.
    jwks.rotate(vec![
        tokens::jwk(tokens::RSA_A, jsonwebtoken::Algorithm::RS256, "a"),
        tokens::jwk(tokens::RSA_B, jsonwebtoken::Algorithm::RS256, "b"),
    ]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(b.clone()).await.expect("up").status(),
        200,
        "b accepted after the rotation"
    );
    // A token signed by b but naming a: the signature does not match a's key.
    assert_eq!(
        get(tokens::rs256(tokens::RSA_B, "a", &claims))
            .await
            .expect("up")
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rs256_public_key_used_as_an_hs256_secret_is_refused() {
    // The key set also publishes a symmetric key: the gateway must not use it either.
    let symmetric = json!({ "kty": "oct", "kid": "s", "alg": "HS256", "k": b64(SYMMETRIC) });
    let jwks = Jwks::start(vec![
        tokens::jwk(tokens::RSA_A, jsonwebtoken::Algorithm::RS256, "a"),
        symmetric,
    ])
    .await;
    let claims = tokens::claims("mallory", json!({}));
    let hs256 = |kid: &str, secret: &[u8]| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.into());
        let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("a secret");
        jsonwebtoken::encode(&header, &claims, &key).expect("sign")
    };
    // HS256 signed with what the key set publishes: the RSA public key (PEM and DER), the
    // symmetric key; and `alg: none`.
    let forged = [
        hs256("a", tokens::RSA_A_PUBLIC),
        hs256("a", tokens::RSA_A_PUBLIC_DER),
        hs256("s", SYMMETRIC),
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(serde_json::to_string(&claims).expect("json").as_bytes())
        ),
    ];
    // With no HS256 secret configured, and with one (the forgeries meet it, not a JWKS key).
    for hs256_secret in [None, Some(tokens::SECRET)] {
        let mut jwt = format!("jwks_url = \"{}\"", jwks.url);
        if let Some(secret) = hs256_secret {
            jwt.push_str(&format!("\nhs256_secret = \"{secret}\""));
        }
        let (_registry, _upstreams, gateway) = setup(&jwt).await;
        let http = reqwest::Client::new();
        let status = |token: String| {
            let request = http
                .get(format!("{}/api/users/1", gateway.url))
                .bearer_auth(token);
            async move { request.send().await.expect("up").status() }
        };
        for (i, token) in forged.iter().enumerate() {
            assert_eq!(status(token.clone()).await, 401, "forgery {i}, {jwt}");
        }
        // The genuine RS256 token passes.
        let genuine = tokens::rs256(tokens::RSA_A, "a", &claims);
        assert_eq!(status(genuine).await, 200, "{jwt}");
    }
}

/// The symmetric key the JWKS above publishes.
const SYMMETRIC: &[u8] = b"a-symmetric-key-in-a-jwks-document-32b";

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Text and binary frames come back as sent; a ping gets the service's one pong.
async fn frames_and_pings_cross(socket: &mut Socket) {
    socket
        .send(tungstenite::Message::text("hello"))
        .await
        .expect("send");
    assert_eq!(next(socket).await, tungstenite::Message::text("hello"));
    socket
        .send(tungstenite::Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_eq!(
        next(socket).await,
        tungstenite::Message::binary(vec![1u8, 2, 3])
    );
    socket
        .send(tungstenite::Message::Ping(bytes::Bytes::from_static(
            b"are you there",
        )))
        .await
        .expect("ping");
    assert_eq!(
        next(socket).await,
        tungstenite::Message::Pong(bytes::Bytes::from_static(b"are you there"))
    );
    // The service's one pong, not a second one from the gateway.
    socket
        .send(tungstenite::Message::text("after the ping"))
        .await
        .expect("send");
    assert_eq!(
        next(socket).await,
        tungstenite::Message::text("after the ping")
    );
}

/// The client's close code comes back; the service's close code reaches the client.
async fn close_codes_cross(mut socket: Socket, gateway: &str) {
    // The client closes with its own code: the same code comes back.
    socket
        .send(tungstenite::Message::Close(Some(
            tungstenite::protocol::CloseFrame {
                code: CloseCode::Library(4000),
                reason: "done".into(),
            },
        )))
        .await
        .expect("close");
    match next(&mut socket).await {
        tungstenite::Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Library(4000))
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // The service closes: its code reaches the client.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{gateway}/ws/chat"))
        .await
        .expect("upgraded");
    socket
        .send(tungstenite::Message::text("close-me"))
        .await
        .expect("send");
    match next(&mut socket).await {
        tungstenite::Message::Close(Some(frame)) => {
            assert_eq!(
                (frame.code, frame.reason.as_str()),
                (CloseCode::Library(4001), "asked")
            )
        }
        other => panic!("expected the service's close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_close_codes_and_pings_cross_the_gateway() {
    let (registry, _upstreams, gateway) = setup(&hs256_only()).await;
    let chat = Upstream::start("chat").await;
    registry.register("chat", "chat-1", chat.addr).await;
    let mut request = format!("ws://{}/ws/chat", gateway.addr())
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "echo.v1, echo.v2".parse().expect("value"),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgraded");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "echo.v2",
        "the service's choice"
    );
    frames_and_pings_cross(&mut socket).await;
    close_codes_cross(socket, gateway.addr()).await;
    // Not an upgrade on a WebSocket route, and a service that is not there: HTTP answers.
    let answer = reqwest::get(format!("{}/ws/chat", gateway.url))
        .await
        .expect("up");
    assert_eq!(answer.status(), 426);
    assert_eq!(answer.headers()["upgrade"], "websocket");
    chat.kill();
    let _ = reqwest::Client::new()
        .delete(format!(
            "{}/v1/services/chat/instances/chat-1",
            registry.url
        ))
        .send()
        .await;
    // Once the gateway has heard of the deregistration (a watch away), the route answers 503.
    let url = format!("ws://{}/ws/chat", gateway.addr());
    let url = &url;
    let refused = support::poll::poll(Duration::from_secs(10), || async move {
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(response)) if response.status() == 503 => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(refused.is_some(), "a 503 once the service is gone");
}

/// The next data or control message (or close).
async fn next(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> tungstenite::Message {
    tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message within 5 s")
        .expect("not ended")
        .unwrap_or_else(|e| panic!("no error: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_routed_around() {
    let (registry, _upstreams, gateway) = setup(&hs256_only()).await;
    let second = Upstream::start("product-service-2").await;
    registry
        .register("product-service", "product-service-2", second.addr)
        .await;
    let first = &_upstreams[2];
    let http = reqwest::Client::new();
    let url = format!("{}/api/products", gateway.url);
    // Both instances in use.
    for _ in 0..200 {
        if first.hits() > 0 && second.hits() > 0 {
            break;
        }
        assert_eq!(http.get(&url).send().await.expect("up").status(), 200);
    }
    assert!(
        first.hits() > 0 && second.hits() > 0,
        "both instances serve"
    );
    // One dies without deregistering: every GET still succeeds (connect failures retried on
    // the other instance, the dead one ejected).
    first.kill();
    let before = second.hits();
    for i in 0..100 {
        let answer = http.get(&url).send().await.expect("up");
        assert_eq!(answer.status(), 200, "request {i} after the kill");
    }
    assert_eq!(second.hits() - before, 100, "all served by the survivor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_the_index() {
    let (registry, _upstreams, gateway) = setup(&hs256_only()).await;
    let http = reqwest::Client::new();
    let token = tokens::hs256(&tokens::claims("m", json!({})));
    for _ in 0..3 {
        http.get(format!("{}/api/users/9", gateway.url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("up");
    }
    http.get(format!("{}/api/users/9", gateway.url))
        .send()
        .await
        .expect("up");
    let metrics = gateway.text("/metrics").await;
    for expected in [
        r#"sdk_gateway_requests_total{route="users",status="200"} 3"#,
        r#"sdk_gateway_requests_total{route="users",status="401"} 1"#,
        r#"sdk_gateway_request_duration_seconds_bucket{route="users",le="+Inf"} 4"#,
        r#"sdk_calls_total{service="user-service",method="GET",endpoint="/api/users/{user_id}",outcome="success"} 3"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    let (status, health) = json_of(
        http.get(format!("{}/health", gateway.url))
            .send()
            .await
            .expect("up"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    let users = health["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["route"] == "users")
        .expect("users")
        .clone();
    assert_eq!(users["breaker"], "closed");
    // The index links to the registry's dashboard, for people and for programs.
    let page = http
        .get(format!("{}/", gateway.url))
        .header("accept", "text/html")
        .send()
        .await
        .expect("up")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(&format!("href=\"{}/\"", registry.url)),
        "{page}"
    );
    let (_, index) = json_of(
        http.get(format!("{}/", gateway.url))
            .send()
            .await
            .expect("up"),
    )
    .await;
    assert_eq!(index["dashboard"], format!("{}/", registry.url));
}

#[tokio::test]
async fn bad_configurations_are_refused_with_the_key() {
    let cases = [
        ("[routes.a]\npath = \"/a/{x}\"\nservice = \"s\"\n[routes.b]\npath = \"/a/{y}\"\nservice = \"s\"\n", "routes.b.path"),
        ("[routes.a]\npath = \"/a\"\nservice = \"s\"\nprotected = true\n", "needs [gateway.jwt]"),
        ("[gateway.jwt]\nhs256_secret = \"short\"\n", "at least 32 bytes"),
        ("[routes.a]\npath = \"/a/{x}\"\nservice = \"s\"\nrewrite = \"/b/{y}\"\n", "`{y}` is not in the path"),
        ("[routes.a]\npath = \"/health\"\nservice = \"s\"\n", "the gateway's own"),
        ("[routes.a]\npath = \"/a\"\nservice = \"s\"\nrate_limit = { per_second = 0 }\n", "at least 1"),
        ("[routes.a]\npath = \"/a\"\nservice = \"s\"\nrate_limit = { per_second = 1, per_minute = 1 }\n", "both"),
        ("[routes.a]\npath = \"/a\"\nservice = \"s\"\ntimout = \"1s\"\n", "timout"),
        // The binary's own flags from `[server.gateway]`, checked as the flags are.
        ("[server.gateway]\nidle_timeout_secs = 0\n", "--idle-timeout-secs"),
        ("[server.gateway]\nlisen = \"127.0.0.1:0\"\n", "unknown key `server.gateway.lisen`"),
    ];
    for (config, says) in cases {
        let (status, stderr) = support::run_gateway(config).await;
        assert!(!status.success(), "{config} was accepted");
        assert!(stderr.contains(says), "{stderr:?} should mention {says:?}");
    }
}

/// The documentation's curl lines for the gateway, run as written against the binary with the
/// guide's routes (and tokens for `$TOKEN` and `$READER`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_curl_lines_work_as_written() {
    let (_registry, _upstreams, gateway) = setup(&hs256_only()).await;
    let token = tokens::hs256(&tokens::claims(
        "u",
        json!({ "scope": "orders:read orders:write" }),
    ));
    let reader = tokens::hs256(&tokens::claims("u", json!({ "scope": "orders:read" })));
    let addr = gateway.addr().to_owned();
    tokio::task::spawn_blocking(move || {
        let curls = readme_curl::curls("With curl, against the configuration above:");
        let env = [("TOKEN", token.as_str()), ("READER", reader.as_str())];
        let bodies = readme_curl::run_all(&curls, &[("localhost:8080", addr.as_str())], &env);
        assert!(
            bodies
                .iter()
                .any(|b| b.contains("sdk_gateway_requests_total")),
            "{bodies:?}"
        );
    })
    .await
    .expect("the curl lines");
}
