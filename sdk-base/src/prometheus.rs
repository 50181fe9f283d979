//! [`install`]: the one way a process installs its Prometheus recorder (feature
//! `prometheus`), for the SDK's `telemetry::Prometheus` and every server binary alike.

use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

/// Installs the process's Prometheus recorder, with histograms on explicit buckets
/// ([`LATENCY_BUCKETS`](crate::LATENCY_BUCKETS), so they aggregate across instances), and
/// drains it every 5 s on the current tokio runtime, if there is one (rendering drains it
/// too).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets(crate::LATENCY_BUCKETS)?
        .install_recorder()?;
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let upkeep = handle.clone();
        runtime.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
    }
    Ok(handle)
}
