//! The retry policy, and the client's retry loop that runs it (tower's `Retry` runs it the
//! same way for stacks of one's own).

use std::{pin::Pin, sync::Arc, time::Duration};

use http::StatusCode;
use tokio::time::{Instant, Sleep};
use tower::retry::budget::Budget;

use super::{classify, Backoff, RetriesExhausted, RetryBudget, RetryConfig};
use crate::{
    box_error::BoxError, request::ServiceRequest, response::ServiceResponse, retry::RetryStop,
};

/// The least time a retry must have before the call's deadline. Over a network nothing
/// answers in less; and a hop that inherited this call's deadline (rounded down to the
/// millisecond) answers `504` a millisecond or two before it, which must not set off one
/// more attempt at the very end.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(5);

/// Decides, after each attempt, whether and when to try again.
///
/// The attempt number travels on the request; the budget and settings are shared by every
/// call to one service, so cloning the policy per call is a reference-count increment.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    max_attempts: u32,
    retry_non_idempotent: bool,
    retry_statuses: Vec<StatusCode>,
    max_retry_after: Duration,
    backoff: Arc<dyn Backoff>,
    budget: Arc<RetryBudget>,
}

impl RetryPolicy {
    /// A policy from validated settings (see `RetryConfig::validate`).
    pub fn new(config: &RetryConfig) -> Self {
        let budget = &config.budget;
        RetryPolicy {
            shared: Arc::new(Shared {
                max_attempts: config.max_attempts.max(1),
                retry_non_idempotent: config.retry_non_idempotent,
                retry_statuses: config.retry_statuses.clone(),
                max_retry_after: config.max_retry_after,
                backoff: config.backoff.clone(),
                budget: Arc::new(RetryBudget::new(
                    budget.window,
                    budget.min_per_second,
                    budget.ratio,
                )),
            }),
        }
    }

    /// The service's retry budget, which hedges draw from too.
    pub fn budget(&self) -> Arc<RetryBudget> {
        self.shared.budget.clone()
    }

    fn give_up(
        &self,
        attempt: u32,
        stop: RetryStop,
        result: &mut Result<ServiceResponse, BoxError>,
    ) {
        match result {
            Ok(response) => {
                response.attempts = attempt;
                response.retry_stop = Some(stop);
            }
            Err(err) => {
                let last = std::mem::replace(err, Box::from(""));
                *err = Box::new(RetriesExhausted::new(attempt, stop, last));
            }
        }
    }
}

impl tower::retry::Policy<ServiceRequest, ServiceResponse, BoxError> for RetryPolicy {
    // Boxed: tower's response future holds this inline, and a `Sleep` is over 100 bytes that
    // every call would carry (and copy) although only retries use it.
    type Future = Pin<Box<Sleep>>;

    fn retry(
        &mut self,
        request: &mut ServiceRequest,
        result: &mut Result<ServiceResponse, BoxError>,
    ) -> Option<Pin<Box<Sleep>>> {
        let attempt = request.attempt();
        let verdict = classify::classify(
            request,
            result,
            &self.shared.retry_statuses,
            self.shared.retry_non_idempotent,
        );
        let after = match verdict {
            classify::Verdict::Done => {
                if let Ok(response) = result {
                    response.attempts = attempt;
                } else if attempt > 1 {
                    self.give_up(attempt, RetryStop::AttemptsExhausted, result);
                }
                return None;
            }
            classify::Verdict::Retry { after } => after,
        };
        let (max_attempts, method_backoff) = match request.options().retry.as_deref() {
            Some(retry) => (retry.max_attempts.max(1), Some(retry.backoff)),
            None => (self.shared.max_attempts, None),
        };
        if attempt >= max_attempts {
            if attempt > 1 || result.is_ok() {
                self.give_up(attempt, RetryStop::AttemptsExhausted, result);
            }
            return None;
        }
        let delay = match after {
            Some(after) if after > self.shared.max_retry_after => {
                // The server asks for a longer pause than we are willing to wait.
                self.give_up(attempt, RetryStop::RetryAfterTooLong, result);
                return None;
            }
            Some(after) => after,
            None => match method_backoff {
                Some(backoff) => backoff.delay(attempt),
                None => self.shared.backoff.delay(attempt),
            },
        };
        let wake = crate::clock::instant_after(Instant::now(), delay);
        if request
            .deadline()
            .is_some_and(|deadline| wake + MIN_ATTEMPT_TIME >= deadline)
        {
            self.give_up(attempt, RetryStop::DeadlineReached, result);
            return None;
        }
        if !self.shared.budget.withdraw() {
            tracing::debug!(attempt, "retry budget exhausted");
            self.give_up(attempt, RetryStop::BudgetExhausted, result);
            return None;
        }
        tracing::debug!(attempt, ?delay, "retrying");
        request.set_attempt(attempt + 1);
        // The next attempt should go elsewhere when there is an elsewhere.
        let failed_on = match result {
            Ok(response) => response.instance.clone(),
            Err(e) => crate::error_chain::find::<crate::error::AttemptError>(e.as_ref())
                .map(|a| a.instance().clone()),
        };
        request.set_avoid(failed_on);
        Some(Box::pin(tokio::time::sleep_until(wake)))
    }

    fn clone_request(&mut self, request: &ServiceRequest) -> Option<ServiceRequest> {
        if request.attempt() == 1 {
            self.shared.budget.deposit();
        }
        Some(request.clone())
    }
}

/// Sends `request` through `service`, then again as `policy` decides: the client's retry
/// loop, one step of its call's future. tower's `Retry` (the [`RetryLayer`](super::RetryLayer)
/// for stacks of one's own) runs the same policy the same way: `poll_ready` before each
/// attempt, a copy of the request kept while another attempt may follow, `retry` judging
/// each outcome. Written here because as a layer it cloned the policy and every
/// stage under it on each call and wrapped their future in its own (with the deadline's
/// and the cache's wrappers, 246 instructions a call, issue 33); the decisions stay the
/// policy's.
///
/// The call deposits in the retry budget as it starts: at `started`, the call's own
/// reading of the clock (`clone_request` reads it again for tower's loop).
pub(crate) async fn retried<S>(
    mut policy: RetryPolicy,
    mut service: S,
    request: ServiceRequest,
    started: Instant,
) -> Result<ServiceResponse, BoxError>
where
    S: tower::Service<ServiceRequest, Response = ServiceResponse, Error = BoxError>,
{
    use tower::retry::Policy as _;
    policy.shared.budget.deposit_at(started);
    // The kept request is the one `retry` moves on (attempt number, instance to avoid);
    // each attempt after the first is sent as a copy of it.
    let mut kept = request.clone();
    let mut next = request;
    loop {
        std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
        let mut result = service.call(next).await;
        let Some(wait) = policy.retry(&mut kept, &mut result) else {
            return result;
        };
        drop(result);
        wait.await;
        next = kept.clone();
    }
}
