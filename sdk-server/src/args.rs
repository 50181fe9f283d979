//! [`ServeArgs`]: the flags every server binary takes for how it serves, flattened into
//! its own (`#[command(flatten)]`), so the three binaries take the same names, ranges and
//! defaults.

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use crate::Limits;

/// How a server binary serves: its connection limit, its timeouts and HTTPS.
///
/// ```
/// use clap::Parser as _;
///
/// #[derive(clap::Parser)]
/// struct Args {
///     #[command(flatten)]
///     serve: sdk_server::ServeArgs,
/// }
///
/// let args = Args::try_parse_from(["server", "--idle-timeout-secs", "300"]).expect("valid");
/// assert_eq!(args.serve.limits().idle_timeout.as_secs(), 300);
/// assert_eq!(args.serve.limits().max_connections, 10_000);
/// assert!(Args::try_parse_from(["server", "--header-timeout-secs", "0"]).is_err());
/// ```
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Connections served at once; more are closed on arrival (1 to 1000000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Seconds a client has to send a request's headers, or finish a TLS handshake (1 to 300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout_secs: u64,
    /// Seconds a request body may send no byte before it is cut off with a JSON 408 (1 to
    /// 3600).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub body_timeout_secs: u64,
    /// Seconds a connection (a WebSocket or an event stream too) may move no byte before it
    /// is closed (1 to 86400).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,
    /// Seconds requests in flight get to finish after SIGTERM (0 to 300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_grace_secs: u64,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The accept loop's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            shutdown_grace: self.shutdown_grace(),
        }
    }

    /// How long a request body may send nothing.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    /// How long requests in flight get after the stop signal.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The TLS settings from `--tls-cert` and `--tls-key`, when both are given (an error
    /// names the file and the problem).
    pub fn tls(&self) -> io::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => crate::tls::load(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    /// Refuses an idle timeout of `min_secs` or less, as clap refuses a value out of range
    /// (exit status 2, naming the flag): the registry's must outlast its longest long poll.
    pub fn require_idle_above(&self, min_secs: u64) -> Result<(), clap::Error> {
        if self.idle_timeout_secs > min_secs {
            return Ok(());
        }
        Err(clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!(
                "invalid value '{}' for '--idle-timeout-secs': must be above {min_secs} here\n",
                self.idle_timeout_secs
            ),
        ))
    }
}
