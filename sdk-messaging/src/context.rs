//! [`MessageContext`]: what a handler knows of the message it handles.

use http::HeaderMap;

use crate::{Pattern, Urgency};

/// What a handler knows of the message besides its payload.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MessageContext {
    /// The handler's pattern that matched (`order.*`).
    pub pattern: Pattern,
    /// The pattern the message was sent to (`order.placed`).
    pub subject: Pattern,
    /// The message's id (the same on every delivery of it).
    pub message_id: String,
    /// The correlation id the sender gave (else the message's id); pass it on to calls
    /// made while handling, so they can be tied together.
    pub correlation_id: String,
    /// Where the reply goes, for a request.
    pub reply_to: Option<String>,
    /// Every header of the message (the sender's own, `traceparent`, the SDK's).
    pub headers: HeaderMap,
    /// How urgent the sender said it is.
    pub urgency: Urgency,
    /// Which delivery this is, from 1.
    pub attempt: u32,
}

tokio::task_local! {
    /// The context of the message the current task is handling.
    static CURRENT: MessageContext;
}

impl MessageContext {
    /// The context of the message being handled, inside a handler (also one a
    /// `#[message_interface]` implementation's method is called for, which has no context
    /// argument); `None` elsewhere.
    pub fn current() -> Option<MessageContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `future` with `self` as the current context.
    pub(crate) async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// Whether the message was delivered before (and not settled).
    pub fn redelivered(&self) -> bool {
        self.attempt > 1
    }

    /// A header as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
