//! The registry server: `sdk-registry --listen 127.0.0.1:8500 --data registry.json`
//! (`--tls-cert cert.pem --tls-key key.pem` for HTTPS).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use sdk_registry::server::{router, tls, HealthChecks, Registry, ServerConfig};

/// The service registry server.
#[derive(Debug, Parser)]
#[command(name = "sdk-registry", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8500")]
    listen: SocketAddr,
    /// Snapshot file: registrations survive restarts (and kill -9).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seconds without a heartbeat before an instance is evicted.
    #[arg(long, default_value_t = 90)]
    ttl_secs: u64,
    /// Bearer token required for writes.
    #[arg(long, env = "SDK_REGISTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Require the token for reads too.
    #[arg(long)]
    protect_reads: bool,
    /// Milliseconds between health-check rounds (instances with a health_check_path).
    #[arg(long, default_value_t = 10_000)]
    health_interval_ms: u64,
    /// Milliseconds allowed for one health probe.
    #[arg(long, default_value_t = 5_000)]
    health_timeout_ms: u64,
    /// Failed probes in a row that mark an instance unhealthy.
    #[arg(long, default_value_t = 3)]
    unhealthy_threshold: u32,
    /// Passing probes in a row that mark it healthy again.
    #[arg(long, default_value_t = 1)]
    healthy_threshold: u32,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let args = Args::parse();
    let config = ServerConfig {
        ttl: Duration::from_secs(args.ttl_secs.max(1)),
        snapshot: args.data,
        token: args.token,
        protect_reads: args.protect_reads,
        ..ServerConfig::default()
    };
    let registry = Registry::open(config).await?;
    let evictor = registry.spawn_evictor(Duration::from_secs(1));
    let checks = registry.spawn_health_checks(HealthChecks {
        interval: Duration::from_millis(args.health_interval_ms.max(10)),
        timeout: Duration::from_millis(args.health_timeout_ms.max(1)),
        unhealthy_threshold: args.unhealthy_threshold,
        healthy_threshold: args.healthy_threshold,
    });
    // Certificate problems are reported before anything listens.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::load(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("listening on {}", listener.local_addr()?);
    // On the signal, open long polls and event streams end, then in-flight requests finish.
    let closer = registry.clone();
    let shutdown = async move {
        shutdown_signal().await;
        closer.close();
    };
    match tls {
        Some(tls) => tls::serve(listener, router(registry), tls, shutdown).await?,
        None => {
            axum::serve(listener, router(registry))
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    evictor.abort();
    checks.abort();
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight, exit.
async fn shutdown_signal() {
    let terminate = async {
        #[cfg(unix)]
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
