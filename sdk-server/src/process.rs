//! What a server binary does around its router: stop on a signal, and keep a Prometheus
//! recorder for `GET /metrics`. The registry's and the event bus's binaries share these.

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight, exit.
pub async fn shutdown_signal() {
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

/// The process's Prometheus recorder, rendered on `GET /metrics`: histograms with explicit
/// buckets (1 ms to 30 s), drained every 5 s ([`sdk_base::prometheus::install`], the one
/// install the SDK's `telemetry::Prometheus` uses too).
pub fn metrics_recorder(
) -> Result<metrics_exporter_prometheus::PrometheusHandle, metrics_exporter_prometheus::BuildError>
{
    sdk_base::prometheus::install()
}
