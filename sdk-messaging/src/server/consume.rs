//! One handler's consumer: takes deliveries, runs the handler at most `prefetch` at a time,
//! and settles each one by what came of it.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use sdk::retry::Backoff as _;
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;

use super::{
    handler::{failure_reason, failure_status, ErasedHandler, Handled},
    ServerOptions,
};
use crate::{
    broker::{Deliveries, Delivery},
    envelope::Kind,
    pattern,
    telemetry::HandlerMetrics,
    MessageContext, Pattern, Reply,
};

/// One handler of a server, and what it needs to settle its deliveries.
pub(super) struct Worker {
    pub(super) group: Arc<str>,
    pub(super) pattern: Pattern,
    pub(super) kind: Kind,
    pub(super) handler: ErasedHandler,
    /// The server's patterns of the same kind: a message goes to the most specific.
    pub(super) siblings: Arc<[Pattern]>,
    pub(super) options: Arc<ServerOptions>,
    /// Ids of events handled here lately: a redelivery of one is settled, not handled again.
    pub(super) seen: moka::sync::Cache<String, ()>,
    /// Bounds the handlers in flight; shutdown waits for all its permits.
    pub(super) permits: Arc<Semaphore>,
    pub(super) metrics: HandlerMetrics,
}

impl Worker {
    /// Takes deliveries until `stop` says so or the stream ends.
    pub(super) async fn run(
        self: Arc<Self>,
        mut deliveries: Deliveries,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let permit = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let delivery = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                next = deliveries.next() => match next {
                    Some(delivery) => delivery,
                    None => return,
                },
            };
            let worker = self.clone();
            tokio::spawn(async move {
                worker.handle(delivery).await;
                drop(permit);
            });
        }
    }

    async fn handle(&self, delivery: Delivery) {
        let Delivery {
            message,
            attempt,
            reply_to,
            settle,
        } = delivery;
        let subject = message.pattern.clone();
        if pattern::best(self.siblings.iter(), subject.as_str()) != Some(&self.pattern) {
            // A more specific handler of this server takes it (its own subscription has it).
            let _ = settle.ack().await;
            return;
        }
        let id = message.id().to_owned();
        if self.kind != Kind::Request && !id.is_empty() && self.seen.contains_key(&id) {
            self.metrics.record("duplicate", None);
            if let Err(e) = settle.ack().await {
                tracing::warn!(pattern = %self.pattern, error = %e, "could not settle a duplicate");
            }
            return;
        }
        let deadline = match self.kind {
            Kind::Request => caller_deadline(&message.headers),
            Kind::Event | Kind::Queue => None,
        };
        if deadline.is_some_and(|d| d.remaining().is_zero()) {
            // Its caller has given up already: answering is all that is left to do.
            self.metrics.record("expired", None);
            let reply = Reply::new(
                http::StatusCode::GATEWAY_TIMEOUT,
                error_body(&failure_reason(&past_deadline())),
            );
            if let Err(e) = settle.reply(reply).await {
                tracing::debug!(pattern = %self.pattern, error = %e, "could not answer");
            }
            return;
        }
        let context = MessageContext {
            pattern: self.pattern.clone(),
            subject: subject.clone(),
            message_id: id.clone(),
            correlation_id: message.correlation_id().to_owned(),
            reply_to,
            urgency: message.urgency(),
            headers: message.headers,
            attempt,
        };
        let span = tracing::info_span!("message", group = %self.group, pattern = %self.pattern,
            subject = %subject, id = %id, attempt);
        let started = tokio::time::Instant::now();
        let handling = contained(&self.handler, message.payload, context).instrument(span.clone());
        let handled = within(deadline, handling).await;
        let elapsed = started.elapsed();
        let settled = match self.kind {
            Kind::Request => self.answer(settle, handled, elapsed).await,
            Kind::Event | Kind::Queue => {
                self.settle_event(settle, handled, &id, attempt, elapsed)
                    .await
            }
        };
        if let Err(e) = settled {
            span.in_scope(|| tracing::warn!(error = %e, "could not settle the message"));
        }
    }

    async fn answer(
        &self,
        settle: Box<dyn crate::broker::Settle>,
        handled: Handled,
        elapsed: Duration,
    ) -> Result<(), sdk::BoxError> {
        let status = failure_status(&handled);
        let (outcome, payload) = match handled {
            Handled::Done(json) => ("ok", json),
            Handled::Undecodable(reason) => ("undecodable", error_body(&reason)),
            Handled::Failed(e) => ("failed", error_body(&failure_reason(&e))),
        };
        self.metrics.record(outcome, Some(elapsed));
        settle.reply(Reply::new(status, payload)).await
    }

    async fn settle_event(
        &self,
        settle: Box<dyn crate::broker::Settle>,
        handled: Handled,
        id: &str,
        attempt: u32,
        elapsed: Duration,
    ) -> Result<(), sdk::BoxError> {
        let record = |outcome| self.metrics.record(outcome, Some(elapsed));
        match handled {
            Handled::Done(_) => {
                record("ok");
                settle.ack().await?;
                if !id.is_empty() {
                    self.seen.insert(id.to_owned(), ());
                }
                Ok(())
            }
            Handled::Undecodable(reason) => {
                record("dead_letter");
                tracing::warn!(pattern = %self.pattern, %reason, "dead-lettering an undecodable message");
                settle.dead_letter(reason).await
            }
            Handled::Failed(e) => {
                if let Some(wait) = deferral(&e) {
                    record("deferred");
                    let delay = wait.max(self.options.backoff.delay(attempt));
                    tracing::debug!(pattern = %self.pattern, error = %e, ?delay, "what the handler calls is not taking calls; delivering again later, no attempt spent");
                    return settle.defer(delay).await;
                }
                if !e.is_retryable() || attempt >= self.options.max_attempts {
                    record("dead_letter");
                    let reason = format!(
                        "the handler failed (delivery {attempt}): {}",
                        failure_reason(&e)
                    );
                    tracing::warn!(pattern = %self.pattern, %reason, "dead-lettering a message");
                    return settle.dead_letter(reason).await;
                }
                record("retried");
                let delay = self.options.backoff.delay(attempt);
                tracing::debug!(pattern = %self.pattern, error = %e, ?delay, "handler failed; delivering again");
                settle.retry(delay).await
            }
        }
    }
}

/// Runs `handler`, containing a panic in it (when it is called or while it runs) as a
/// failed attempt: an event is settled like any failure (delivered again with backoff, a
/// dead letter after the last attempt), a request answered with a 500 at once, and the
/// consumer goes on. A panic left to unwind would end the task holding the delivery
/// unsettled, and with it a prefetch slot, for good.
async fn contained(
    handler: &ErasedHandler,
    payload: bytes::Bytes,
    context: MessageContext,
) -> Handled {
    use futures_util::FutureExt as _;
    use std::panic::AssertUnwindSafe;
    let called = std::panic::catch_unwind(AssertUnwindSafe(|| handler(payload, context)));
    let outcome = match called {
        Ok(handling) => AssertUnwindSafe(handling).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        tracing::error!(panic = %what, "the handler panicked");
        Handled::Failed(crate::handler_error(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("the handler panicked: {what}"),
        ))
    })
}

/// Whether the handler failed only because what it calls is not taking calls now, and for
/// how long at least to wait: an open breaker (until the breaker's own retry time), or no
/// connection (nothing was sent; the backoff decides). Such a
/// failure says nothing of the message, so it spends none of its attempts: a target down
/// for minutes loses nothing.
fn deferral(error: &sdk::ServiceError) -> Option<Duration> {
    match error.last_attempt() {
        sdk::ServiceError::CircuitOpen { retry_after, .. } => Some(*retry_after),
        // A refused certificate is a connect failure too, but a lasting one: not deferred.
        sdk::ServiceError::Transport { connect: true, .. } if error.is_retryable() => {
            Some(Duration::ZERO)
        }
        _ => None,
    }
}

/// When a request's caller stops waiting: the time it had left when it sent the request,
/// counted from its delivery here.
fn caller_deadline(headers: &http::HeaderMap) -> Option<sdk::deadline::RequestDeadline> {
    let left = sdk::deadline::remaining(headers)?;
    let now = tokio::time::Instant::now();
    Some(sdk::deadline::RequestDeadline::at(
        now.checked_add(left).unwrap_or(now),
    ))
}

/// Runs a handler under its caller's deadline, which the handler's own calls inherit;
/// once it passes, nobody waits for the answer, and the handler is dropped.
async fn within(
    deadline: Option<sdk::deadline::RequestDeadline>,
    handling: impl std::future::Future<Output = Handled>,
) -> Handled {
    let Some(deadline) = deadline else {
        return handling.await;
    };
    tokio::time::timeout_at(deadline.instant(), deadline.scope(handling))
        .await
        .unwrap_or_else(|_| Handled::Failed(past_deadline()))
}

/// The failure of a request whose caller's deadline passed.
fn past_deadline() -> sdk::ServiceError {
    crate::handler_error(
        http::StatusCode::GATEWAY_TIMEOUT,
        "the caller's deadline passed before an answer",
    )
}

fn error_body(reason: &str) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::json!({ "error": reason }).to_string())
}
