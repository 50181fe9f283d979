//! The gateway: `sdk-gateway --config gateway.toml --listen 127.0.0.1:8080`. The file holds
//! the routes (`[routes.NAME]`), the gateway's settings (`[gateway.jwt]`,
//! `[gateway.clients]`, `[gateway.rate_limit]`) and the SDK's (`[sdk]`, `[services.NAME]`):
//! how services are found and called.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use sdk_gateway::{Gateway, GatewayConfig};
use sdk_server::{metrics_recorder, serve, shutdown_signal, ServeArgs};

/// The API gateway.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sdk-gateway",
    version,
    about = "The sdk-gateway: routes requests to services found through the registry, with JWT, rate limits, WebSockets and streamed bodies."
)]
struct Args {
    /// The TOML file: routes, gateway settings, and the SDK's settings; its
    /// `[server.gateway]` table sets any other flag by name (`listen = "0.0.0.0:8080"`), a
    /// flag given here overriding it.
    #[arg(long, env = "SDK_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    sdk_gateway::init_logging();
    let args: Args = sdk_server::parse_args("gateway");
    let config = sdk::SdkConfig::from_file(&args.config)?;
    let gateway_config = GatewayConfig::from_sdk_config(&config)?;
    let metrics = metrics_recorder()?;
    let sdk = sdk::ServiceSdk::from_config(config)?;
    let mut gateway = Gateway::new(sdk, &gateway_config)?
        .with_metrics(metrics)
        .with_body_timeout(args.serve.body_timeout());
    let tls = args.serve.tls()?;
    if tls.is_some() {
        gateway = gateway.behind_tls();
    }
    gateway.prefetch_keys().await;
    let _upkeep = gateway.spawn_upkeep(Duration::from_secs(60));
    let limits = args.serve.limits();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("listening on {}", listener.local_addr()?);
    serve(listener, gateway.app(), tls, limits, shutdown_signal()).await?;
    Ok(())
}
