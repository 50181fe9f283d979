//! The registry server: `sdk-registry --listen 127.0.0.1:8500 --data registry.db` with the
//! token in `SDK_REGISTRY_TOKEN` (`--tls-cert cert.pem --tls-key key.pem` for HTTPS), or
//! `sdk-registry --config platform.toml` with the flags in `[server.registry]`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use rustls::pki_types::{pem::PemObject, CertificateDer};
use sdk_registry::server::{
    metrics_recorder, router, serve, shutdown_signal, HealthChecks, Registry, ServerConfig,
};
use sdk_server::ServeArgs;

/// The service registry server.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sdk-registry",
    version,
    about = "The sdk-registry server: services register their instances here, and SDK clients discover them.",
    long_about = "The sdk-registry server: services register their instances here (with heartbeats and \
optional active health checks), and SDK clients discover them through long polls or an event stream.\n\n\
Every acknowledged write is in the SQLite file given by --data before it is answered. Writes need the \
bearer token (--token or SDK_REGISTRY_TOKEN) unless --allow-open-writes is given. GET / lists the API."
)]
struct Args {
    /// The platform's TOML file: its `[server.registry]` table sets any flag below by name
    /// (`ttl_secs = 30`); a flag given here, or its environment variable, overrides it.
    #[arg(long, env = "SDK_REGISTRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8500")]
    listen: SocketAddr,
    /// SQLite data file: every acknowledged write survives restarts, kill -9 and power
    /// loss. An older release's JSON snapshot at this path is imported once.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seconds without a heartbeat before an instance is evicted (1 to 604800).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    ttl_secs: u64,
    /// Bearer token required for writes (must not be empty).
    #[arg(long, env = "SDK_REGISTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Accept writes from anyone when no token is set (a warning is logged, and /health
    /// says `"writes": "open"`).
    #[arg(long)]
    allow_open_writes: bool,
    /// Require the token for reads too.
    #[arg(long)]
    protect_reads: bool,
    /// Milliseconds between health probes of one instance (10 to 3600000).
    #[arg(long, default_value_t = millis(HealthChecks::DEFAULT.interval), value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    health_interval_ms: u64,
    /// Milliseconds allowed for one health probe (1 to 600000).
    #[arg(long, default_value_t = millis(HealthChecks::DEFAULT.timeout), value_parser = clap::value_parser!(u64).range(1..=600_000))]
    health_timeout_ms: u64,
    /// Failed probes in a row that mark an instance unhealthy (1 to 100).
    #[arg(long, default_value_t = HealthChecks::DEFAULT.unhealthy_threshold, value_parser = clap::value_parser!(u32).range(1..=100))]
    unhealthy_threshold: u32,
    /// Passing probes in a row that mark it healthy again (1 to 100).
    #[arg(long, default_value_t = HealthChecks::DEFAULT.healthy_threshold, value_parser = clap::value_parser!(u32).range(1..=100))]
    healthy_threshold: u32,
    /// PEM file of extra CA certificates trusted when probing `https` instances.
    #[arg(long)]
    probe_ca: Option<PathBuf>,
    /// How it serves (the idle timeout must be above 60 s, the longest long poll).
    #[command(flatten)]
    serve: ServeArgs,
}

/// A default duration as the flags give it, in milliseconds.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    sdk_server::init_logging();
    let args: Args = sdk_server::parse_args("registry");
    if let Err(e) = args.serve.require_idle_above(60) {
        e.exit();
    }
    let config = ServerConfig {
        ttl: Duration::from_secs(args.ttl_secs),
        data: args.data.clone(),
        token: args.token.clone(),
        open_writes: args.allow_open_writes,
        protect_reads: args.protect_reads,
        body_timeout: args.serve.body_timeout(),
        metrics: Some(metrics_recorder()?),
        ..ServerConfig::default()
    };
    // Certificate problems are reported before anything listens.
    let tls = args.serve.tls()?;
    let probe_tls = probe_tls(args.probe_ca.as_deref())?;
    let registry = Registry::open(config).await?;
    let evictor = registry.spawn_evictor(Duration::from_millis(250));
    let checks = registry.spawn_health_checks(
        HealthChecks {
            interval: Duration::from_millis(args.health_interval_ms),
            timeout: Duration::from_millis(args.health_timeout_ms),
            unhealthy_threshold: args.unhealthy_threshold,
            healthy_threshold: args.healthy_threshold,
        },
        probe_tls,
    );
    let limits = args.serve.limits();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("listening on {}", listener.local_addr()?);
    // On the signal, open long polls and event streams end, then in-flight requests finish.
    let closer = registry.clone();
    let shutdown = async move {
        shutdown_signal().await;
        closer.close();
    };
    serve(listener, router(registry.clone()), tls, limits, shutdown).await?;
    evictor.abort();
    checks.abort();
    // The write-ahead log merged into the data file: a clean stop leaves one file.
    registry.shutdown().await;
    Ok(())
}

/// The client TLS for probing `https` instances: the Mozilla roots, plus `--probe-ca`.
fn probe_tls(
    extra: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, Box<dyn std::error::Error>> {
    let mut roots = Vec::new();
    if let Some(path) = extra {
        let invalid = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| invalid(&e))? {
            roots.push(cert.map_err(|e| invalid(&e))?);
        }
    }
    Ok(sdk_base::https::tls_config_trusting(roots)?)
}
