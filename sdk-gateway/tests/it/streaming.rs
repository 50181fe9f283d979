//! Bodies of any size cross the gateway as they arrive: a 1 GiB upload and a 1 GiB
//! download, with the gateway's peak memory far below either.

use crate::support;

use crate::support::{upstream::Upstream, Gateway};
use futures_util::StreamExt as _;

const GIB: u64 = 1 << 30;
/// The gateway's peak resident memory must stay below this (a held body would be 1 GiB).
const BOUND_KIB: u64 = 96 * 1024;

fn config(upstream: &Upstream) -> String {
    format!(
        r#"
[services.files]
instances = ["{}"]
timeout = "60s"

[routes.files]
path = "/files/{{*rest}}"
service = "files"
rewrite = "/{{rest}}"
"#,
        upstream.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_each_way_with_bounded_memory() {
    let upstream = Upstream::start("files").await;
    let gateway = Gateway::start(&config(&upstream)).await;
    let http = reqwest::Client::new();
    let before = support::peak_rss_kib(gateway.pid());

    // Up: 1 GiB in 256 KiB chunks, generated as it is sent.
    let chunk = bytes::Bytes::from(vec![3u8; 256 * 1024]);
    let chunks = GIB / chunk.len() as u64;
    let stream =
        futures_util::stream::iter(0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let answer = http
        .put(format!("{}/files/upload", gateway.url))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("uploaded");
    assert_eq!(answer.status(), 200);
    let seen: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(seen["bytes"], GIB, "every byte arrived");
    assert_eq!(seen["sum"], GIB * 3, "and unchanged");

    // Down: 1 GiB, read as it comes.
    let answer = http
        .get(format!("{}/files/download/{GIB}", gateway.url))
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.content_length(),
        Some(GIB),
        "the length goes through"
    );
    let mut body = answer.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        received += chunk.expect("a chunk").len() as u64;
    }
    assert_eq!(received, GIB);

    let peak = support::peak_rss_kib(gateway.pid());
    println!("gateway peak RSS: {before} KiB at start, {peak} KiB after 2 GiB");
    assert!(
        peak < BOUND_KIB,
        "the gateway peaked at {peak} KiB moving 1 GiB bodies"
    );
}
