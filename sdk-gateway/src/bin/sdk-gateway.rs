//! The gateway: `sdk-gateway --config gateway.toml --listen 127.0.0.1:8080`. The file holds
//! the routes (`[routes.NAME]`), the gateway's settings (`[gateway.jwt]`,
//! `[gateway.clients]`, `[gateway.rate_limit]`) and the SDK's (`[sdk]`, `[services.NAME]`):
//! how services are found and called.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use sdk_gateway::{Gateway, GatewayConfig};
use sdk_server::{metrics_recorder, serve, shutdown_signal, tls, Limits};

/// The API gateway.
#[derive(Debug, Parser)]
#[command(
    name = "sdk-gateway",
    version,
    about = "The sdk-gateway: routes requests to services found through the registry, with JWT, rate limits, WebSockets and streamed bodies."
)]
struct Args {
    /// The TOML file: routes, gateway settings, and the SDK's settings.
    #[arg(long, env = "SDK_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Connections served at once; more are closed on arrival (1 to 1000000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Seconds a client has to send a request's headers, or finish a TLS handshake (1 to 300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    header_timeout_secs: u64,
    /// Seconds a connection (a WebSocket too) may move no byte before it is closed (1 to 86400).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout_secs: u64,
    /// Seconds a request body may send no byte before it is cut off with 408 (1 to 3600).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    body_timeout_secs: u64,
    /// Seconds requests in flight get to finish after SIGTERM (0 to 300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=300))]
    shutdown_grace_secs: u64,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    sdk_gateway::init_logging();
    let args = Args::parse();
    let config = sdk::SdkConfig::from_file(&args.config)?;
    let gateway_config = GatewayConfig::from_sdk_config(&config)?;
    let metrics = metrics_recorder()?;
    let sdk = sdk::ServiceSdk::from_config(config)?;
    let mut gateway = Gateway::new(sdk, &gateway_config)?
        .with_metrics(metrics)
        .with_body_timeout(Duration::from_secs(args.body_timeout_secs));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            gateway = gateway.behind_tls();
            Some(tls::load(cert, key)?)
        }
        _ => None,
    };
    gateway.prefetch_keys().await;
    let _upkeep = gateway.spawn_upkeep(Duration::from_secs(60));
    let limits = Limits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        header_read_timeout: Duration::from_secs(args.header_timeout_secs),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("listening on {}", listener.local_addr()?);
    serve(listener, gateway.router(), tls, limits, shutdown_signal()).await?;
    Ok(())
}
