//! The server side's metrics (the client side's are the SDK's own: a `send` or `emit` is a
//! call, counted in `sdk_calls_total` with `method = "SEND"` or `"EMIT"`).
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `sdk_messages_handled_total` | counter | `group`, `pattern` (the handler's), `kind` (`request`, `event`), `outcome` (`ok`, `failed`, `undecodable`, `retried`, `dead_letter`, `duplicate`) |
//! | `sdk_message_handler_duration_seconds` | histogram | `group`, `pattern`, `kind` |
//!
//! Handles are registered once per handler and outcome, so a message costs no label
//! building.

use std::{sync::OnceLock, time::Duration};

use metrics::{Counter, Histogram, Label};

use crate::{envelope::Kind, Pattern};

/// Metric names.
pub mod names {
    /// Messages a server's handlers settled, by outcome.
    pub const HANDLED: &str = "sdk_messages_handled_total";
    /// How long handlers ran, in seconds.
    pub const HANDLER_DURATION: &str = "sdk_message_handler_duration_seconds";
}

const OUTCOMES: [&str; 6] = [
    "ok",
    "failed",
    "undecodable",
    "retried",
    "dead_letter",
    "duplicate",
];

/// One handler's metric handles.
#[derive(Debug)]
pub(crate) struct HandlerMetrics {
    labels: Vec<Label>,
    handled: [OnceLock<Counter>; 6],
    duration: OnceLock<Histogram>,
}

impl HandlerMetrics {
    pub(crate) fn new(group: &str, pattern: &Pattern, kind: Kind) -> Self {
        HandlerMetrics {
            labels: vec![
                Label::new("group", group.to_owned()),
                Label::new("pattern", pattern.as_str().to_owned()),
                Label::new("kind", kind.as_str()),
            ],
            handled: Default::default(),
            duration: OnceLock::new(),
        }
    }

    /// Counts one settled message with `outcome` (one of the table's), and how long its
    /// handler ran, if it ran.
    pub(crate) fn record(&self, outcome: &'static str, elapsed: Option<Duration>) {
        let slot = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(1);
        self.handled[slot]
            .get_or_init(|| {
                let mut labels = self.labels.clone();
                labels.push(Label::new("outcome", OUTCOMES[slot]));
                metrics::counter!(names::HANDLED, labels)
            })
            .increment(1);
        if let Some(elapsed) = elapsed {
            self.duration
                .get_or_init(|| metrics::histogram!(names::HANDLER_DURATION, self.labels.clone()))
                .record(elapsed.as_secs_f64());
        }
    }
}
