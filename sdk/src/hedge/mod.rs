//! Hedged requests: when an idempotent call has not been answered by the endpoint's usual
//! answer time, one more attempt goes to a different instance, and the first good answer
//! wins.
//!
//! A slow tail is mostly one instance having a bad moment (a GC pause, a cold cache, a
//! noisy neighbour). Retrying after a timeout pays the whole timeout first; a hedge pays
//! only the usual answer time, and then whichever instance answers first wins.
//!
//! - **Opt-in**: per service (`[services.NAME.hedge]`, [`HedgeConfig`]), per method
//!   (`#[hedge(after = "p95", max = 1)]`) or per call (`RequestBuilder::hedge`).
//! - **Idempotent calls only** (GET, HEAD, PUT, DELETE, OPTIONS, or a call declared so),
//!   and never a streamed one.
//! - **When**: after the endpoint's observed percentile (`after = "p95"`: its recent
//!   good answer times, in two rotating 10 s windows; nothing is hedged until
//!   `min_samples` answers were seen), or after a fixed delay (`after = "20ms"`). The k-th
//!   of `max` hedges goes out after k times that.
//! - **Never the same instance**: each attempt of a hedged pass records its instance, and
//!   a hedge goes only to one not yet tried (with one instance, nothing is hedged).
//! - **Budgeted**: each hedge takes a token from the service's retry budget, the same
//!   tokens retries take, so hedging and retrying together add at most the budget's
//!   `ratio` to the load, and under an outage the budget runs dry and hedging stops.
//! - **First good answer wins**: a 2xx–4xx answer (not 429) ends the pass and the other
//!   attempts are dropped, which cancels them (the connection's request is abandoned). A
//!   failure waits for the attempts still running; when all have failed, the last failure
//!   goes to the retry layer above, which decides as always.
//!
//! It sits between the retry layer and the circuit breaker, so every attempt, hedge or
//! not, passes the endpoint's breaker and the balancer.
//!
//! Why not tower's `hedge::Hedge`: it cannot keep a hedge off the instance the first
//! attempt went to (it hedges before the balancer picks), has one histogram per service
//! rather than per endpoint, one hedge at most, and no tie to a retry budget.

mod latency;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{stream::FuturesUnordered, StreamExt as _};
use tokio::time::Instant;
use tower::{retry::budget::Budget as _, Layer, Service, ServiceExt as _};

use self::latency::Latencies;
pub use crate::settings::{HedgeAfter, HedgeConfig};
use crate::{
    box_error::BoxError, endpoint_map::EndpointMap, request::ServiceRequest,
    response::ServiceResponse, retry::RetryBudget,
};

/// Applies [`Hedge`] for one service.
#[derive(Clone, Debug)]
pub struct HedgeLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    service: Arc<str>,
    /// The service's setting; a call's own wins.
    config: Option<HedgeConfig>,
    budget: Arc<RetryBudget>,
    latencies: EndpointMap<Latencies>,
    metrics: bool,
}

impl HedgeLayer {
    /// Hedges calls to `service` as `config` says (or as each call says), drawing from
    /// `budget` (the service's retry budget).
    pub fn new(
        service: Arc<str>,
        config: Option<HedgeConfig>,
        budget: Arc<RetryBudget>,
        metrics: bool,
    ) -> Self {
        HedgeLayer {
            shared: Arc::new(Shared {
                service,
                config,
                budget,
                latencies: EndpointMap::new(1024, Latencies::new()),
                metrics,
            }),
        }
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Hedge<S> {
        Hedge {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Sends hedges for slow idempotent calls; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Hedge<S> {
    inner: S,
    shared: Arc<Shared>,
}

type Race = Pin<Box<dyn Future<Output = Result<ServiceResponse, BoxError>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`Hedge`]: the inner future itself for a call that is not
    /// hedged, a boxed race for one that is.
    pub struct HedgeFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Direct { #[pin] future: F },
        Hedged { race: Race },
    }
}

impl<F> HedgeFuture<F> {
    fn direct(future: F) -> Self {
        HedgeFuture {
            kind: Kind::Direct { future },
        }
    }

    fn hedged(race: Race) -> Self {
        HedgeFuture {
            kind: Kind::Hedged { race },
        }
    }
}

impl<F> Future for HedgeFuture<F>
where
    F: Future<Output = Result<ServiceResponse, BoxError>>,
{
    type Output = Result<ServiceResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Direct { future } => future.poll(cx),
            KindProj::Hedged { race } => race.as_mut().poll(cx),
        }
    }
}

impl<S> Hedge<S> {
    /// How `request` is hedged, or `None` when it is not: the call's own setting or the
    /// service's, for an idempotent call that does not stream (its body can be sent once).
    fn config_for(&self, request: &ServiceRequest) -> Option<HedgeConfig> {
        let config = match request.options().hedge.as_deref() {
            Some(config) => Some(*config),
            None => self.shared.config,
        };
        config.filter(|_| request.is_idempotent() && !request.is_streamed())
    }

    /// Whether `request` is hedged. The same for each of a call's attempts, so the client
    /// asks once per call and sends one that is not straight to the stages under this
    /// one: a stage that is off is not in the way.
    pub(crate) fn hedges(&self, request: &ServiceRequest) -> bool {
        self.config_for(request).is_some()
    }

    /// The stages under this one.
    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S> Service<ServiceRequest> for Hedge<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = ServiceResponse;
    type Error = BoxError;
    type Future = HedgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: ServiceRequest) -> Self::Future {
        let Some(config) = self.config_for(&request) else {
            return HedgeFuture::direct(self.inner.call(request));
        };
        let latencies = self.shared.latencies.get_or_insert_with(
            request.method(),
            request.endpoint(),
            Latencies::new,
        );
        let delay = match config.after {
            HedgeAfter::Fixed(delay) => Some(delay),
            HedgeAfter::Percentile(_) => latencies.threshold(),
        };
        request.start_trail();
        // The ready service makes the first attempt; the clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let pass = Pass {
            inner,
            request,
            config,
            delay,
            latencies,
            shared: self.shared.clone(),
        };
        HedgeFuture::hedged(Box::pin(pass.run()))
    }
}

/// One hedged pass: the first attempt, and the hedges it may send.
struct Pass<S> {
    inner: S,
    request: ServiceRequest,
    config: HedgeConfig,
    /// When to hedge; `None` while the endpoint's percentile is not known yet.
    delay: Option<Duration>,
    latencies: Arc<Latencies>,
    shared: Arc<Shared>,
}

/// A good answer ends the pass; anything else waits for the attempts still running.
fn is_good(result: &Result<ServiceResponse, BoxError>) -> bool {
    match result {
        Ok(response) => !response.class().failed_to_serve(),
        Err(_) => false,
    }
}

impl<S> Pass<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = BoxError> + Send,
    S::Future: Send + 'static,
{
    async fn run(mut self) -> Result<ServiceResponse, BoxError> {
        let started = Instant::now();
        let mut attempts = FuturesUnordered::new();
        attempts.push(timed(0, self.inner.call(self.request.clone())));
        let mut sent = 0u32;
        let mut next = self.delay.map(|delay| started + delay);
        loop {
            let hedge_at = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some((index, result, took)) = attempts.next() => {
                    if is_good(&result) {
                        self.finished(index, took);
                        return result;
                    }
                    if attempts.is_empty() {
                        return result;
                    }
                }
                () = hedge_at => {
                    next = None;
                    if let Some(attempt) = self.hedge(sent).await {
                        attempts.push(attempt);
                        sent += 1;
                        if sent < self.config.max {
                            next = self.delay.map(|d| started + d * (sent + 1));
                        }
                    }
                }
            }
        }
    }

    /// Sends hedge number `sent + 1`, if the deadline and the budget allow.
    async fn hedge(&mut self, sent: u32) -> Option<Timed> {
        let left = self
            .request
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left < MIN_HEDGE_TIME) {
            return None;
        }
        if !self.shared.budget.withdraw() {
            tracing::debug!(service = %self.shared.service, "retry budget exhausted; no hedge");
            return None;
        }
        let service = self.inner.ready().await.ok()?;
        tracing::debug!(service = %self.shared.service, endpoint = self.request.endpoint(),
            hedge = sent + 1, "hedging");
        if self.shared.metrics {
            crate::telemetry::hedge(&self.shared.service, "sent");
        }
        Some(timed(sent as usize + 1, service.call(self.request.clone())))
    }

    /// Learns from a good answer: its time feeds the percentile, and a hedge that won is
    /// counted.
    fn finished(&self, index: usize, took: Duration) {
        if let HedgeAfter::Percentile(p) = self.config.after {
            self.latencies.record(took, p, self.config.min_samples);
        }
        if index > 0 && self.shared.metrics {
            crate::telemetry::hedge(&self.shared.service, "won");
        }
    }
}

/// A hedge is not sent with less than this left before the call's deadline.
const MIN_HEDGE_TIME: Duration = Duration::from_millis(5);

type Timed =
    Pin<Box<dyn Future<Output = (usize, Result<ServiceResponse, BoxError>, Duration)> + Send>>;

/// An attempt that reports which it was and how long it took.
fn timed<F>(index: usize, attempt: F) -> Timed
where
    F: Future<Output = Result<ServiceResponse, BoxError>> + Send + 'static,
{
    let started = Instant::now();
    Box::pin(async move {
        let result = attempt.await;
        (index, result, started.elapsed())
    })
}
