//! The event bus server: `sdk-events --listen 127.0.0.1:8600 --database sqlite:events.db`
//! with the admin token in `SDK_EVENTS_TOKEN` (`--database postgres://...` to share one
//! database between several processes), or `sdk-events --config platform.toml` with the
//! flags in `[server.events]`.

use std::{net::SocketAddr, time::Duration};

use sdk::retry::ScheduledBackoff;
use sdk_base::https::AddressPolicy;
use sdk_events::{
    clock::Clock,
    dispatcher::{Dispatcher, DispatcherConfig},
    server::{router, Bus, BusConfig},
    store::Store,
};
use sdk_server::{metrics_recorder, serve, shutdown_signal, ServeArgs};

/// The event bus server.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sdk-events",
    version,
    about = "The sdk-events server: applications publish schema-checked events; subscribers get signed webhook deliveries.",
    long_about = "The sdk-events server: applications publish schema-checked events; subscribers get \
webhook deliveries signed per Standard Webhooks, retried on a schedule, dead-lettered, replayable.\n\n\
An event and its deliveries are committed together before a publish is answered. Set-up calls need the \
admin token (--token or SDK_EVENTS_TOKEN) unless --allow-open-writes is given; each application publishes \
with the token it got when it was created."
)]
struct Args {
    /// The platform's TOML file: its `[server.events]` table sets any flag below by name
    /// (`database = "postgres://..."`); a flag given here, or its environment variable,
    /// overrides it.
    #[arg(long, env = "SDK_EVENTS_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8600")]
    listen: SocketAddr,
    /// `sqlite:<path>` (created if missing) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "SDK_EVENTS_DATABASE",
        default_value = "sqlite:sdk-events.db"
    )]
    database: String,
    /// The admin bearer token (must not be empty).
    #[arg(long, env = "SDK_EVENTS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Accept set-up calls and publishes from anyone when no token is set (a warning is
    /// logged, and /health says `"writes": "open"`).
    #[arg(long)]
    allow_open_writes: bool,
    /// Serve the API only; deliveries are made by other processes on the same database.
    #[arg(long)]
    no_dispatcher: bool,
    /// Failed deliveries in a row that open a handler's breaker (1 to 1000): while it is
    /// open, its deliveries wait without spending attempts.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    handler_breaker_failures: u32,
    /// Milliseconds a handler's breaker stays open before a delivery probes it again (100
    /// to 3600000).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    handler_breaker_open_ms: u64,
    /// Let subscriptions name handlers at internal addresses: loopback, private ranges,
    /// link-local and cloud metadata (refused by default, after DNS too).
    #[arg(long)]
    allow_private_handlers: bool,
    /// Let subscriptions name handlers in this internal network (a CIDR such as
    /// `10.20.0.0/16`; repeatable), the rest staying refused.
    #[arg(long, value_name = "CIDR")]
    allow_handler_network: Vec<ipnet::IpNet>,
    /// Deliveries in flight at once (1 to 10000).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// Seconds a claimed delivery is held before another dispatcher may take it (longer
    /// than an attempt; 1 to 3600).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    lease_secs: u64,
    /// Milliseconds one delivery attempt may take (10 to 600000).
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    attempt_timeout_ms: u64,
    /// Milliseconds between looks for due deliveries (10 to 60000).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    poll_ms: u64,
    /// Least milliseconds between two claims, so that deliveries due together are
    /// claimed by one write (0 to 1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    claim_interval_ms: u64,
    /// The delays between attempts, comma-separated (each ±20 %): one more attempt than
    /// delays.
    #[arg(long, default_value = "5s,5m,30m,2h,5h,10h,10h", value_parser = schedule)]
    schedule: ScheduledBackoff,
    /// Largest request body in bytes (1 KiB to 64 MiB).
    #[arg(long, default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1024..=67_108_864))]
    max_body: u64,
    /// How it serves (deliveries in flight get the shutdown grace too).
    #[command(flatten)]
    serve: ServeArgs,
}

fn schedule(text: &str) -> Result<ScheduledBackoff, String> {
    let steps = text
        .split(',')
        .map(sdk_base::units::parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() || steps.len() > 50 {
        return Err("give 1 to 50 delays".into());
    }
    Ok(ScheduledBackoff::new(steps).spread(0.2))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    sdk_server::init_logging();
    let args: Args = sdk_server::parse_args("events");
    // Certificate problems are reported before anything is opened.
    let tls = args.serve.tls()?;
    let clock = Clock::new();
    let store = Store::open(&args.database).await?;
    let grace = args.serve.shutdown_grace();
    let handlers = match args.allow_private_handlers {
        true => AddressPolicy::any(),
        false => (args.allow_handler_network.iter())
            .fold(AddressPolicy::public_only(), |p, net| p.allow(*net)),
    };
    let dispatcher = (!args.no_dispatcher).then(|| {
        let config = DispatcherConfig {
            concurrency: usize::try_from(args.concurrency).unwrap_or(64),
            lease: Duration::from_secs(args.lease_secs),
            attempt_timeout: Duration::from_millis(args.attempt_timeout_ms),
            poll: Duration::from_millis(args.poll_ms),
            claim_interval: Duration::from_millis(args.claim_interval_ms),
            schedule: args.schedule.clone(),
            shutdown_grace: grace,
            ..DispatcherConfig::default()
        };
        // Handler names are judged again after DNS, on the address connected to.
        let transport = sdk::transport::TransportConfig::new().addresses(handlers.clone());
        // Each handler origin is a service of this SDK, with a breaker of its own.
        let breaker = sdk::circuit_breaker::BreakerConfig::default()
            .failure_threshold(args.handler_breaker_failures)
            .open_duration(Duration::from_millis(args.handler_breaker_open_ms));
        let sdk = sdk::ServiceSdk::builder()
            .transport_config(transport)
            .defaults(sdk::ServiceConfig::new().circuit_breaker(breaker))
            .build();
        sdk.map(|sdk| Dispatcher::new(store.clone(), sdk, config, clock))
    });
    let dispatcher = dispatcher.transpose()?;
    let config = BusConfig {
        admin_token: args.token.clone(),
        open_writes: args.allow_open_writes,
        max_body: usize::try_from(args.max_body).unwrap_or(1 << 20),
        body_timeout: args.serve.body_timeout(),
        metrics: Some(metrics_recorder()?),
        handlers,
    };
    let bus = Bus::new(
        store,
        config,
        clock,
        dispatcher.as_ref().map(Dispatcher::waker),
    )?;
    let limits = args.serve.limits();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("listening on {}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let dispatching = dispatcher.map(|dispatcher| {
        let mut stopped = stopped.clone();
        tokio::spawn(dispatcher.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    serve(listener, router(bus), tls, limits, shutdown).await?;
    if let Some(dispatching) = dispatching {
        let _ = dispatching.await;
    }
    Ok(())
}
