//! Helpers shared by the registry's integration tests (each test file uses some of them).
#![allow(dead_code)]

#[allow(unused_imports)]
pub(crate) use sdk_test_support::{poll, prometheus, tls, until};

#[cfg(feature = "server")]
pub(crate) mod browser;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
#[allow(unused_imports)] // each test file uses some of them
pub(crate) use server::{
    assert_json_errors, data_file, run_binary, start_binary, start_binary_logging, start_server,
    Server, TOKEN,
};

/// A loopback service answering its name (as a JSON string) on `/`; returns its port.
pub(crate) async fn echo(name: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { format!("\"{name}\"") }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    port
}
