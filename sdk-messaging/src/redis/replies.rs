//! Replies to this connection's requests: one list per connection (`<prefix>:reply:<id>`),
//! popped by one listener on a connection of its own (a blocking pop would stall every
//! other command on a shared one) and handed to the request waiting for each by its message
//! id. A request that gives up (its deadline) stops waiting; a reply that comes after is
//! dropped, and a list nobody reads expires a minute after its last reply.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use redis::aio::ConnectionManager;
use sdk_base::backoff::Reconnect;
use tokio::sync::oneshot;

use super::frame;
use crate::Reply;

/// The header a reply carries its request's message id in.
pub(super) const REPLY_FOR: &str = "sdk-reply-for";
/// How long a blocking pop waits before it looks again whether the connection is still used.
const POP_WAIT_SECONDS: f64 = 1.0;
/// How many waiting replies one round trip takes.
const DRAIN_BATCH: usize = 128;

/// Requests waiting for their replies.
#[derive(Debug)]
pub(super) struct Replies {
    /// The list this connection's replies go to.
    pub(super) key: String,
    waiting: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
}

/// One request's wait; dropping it (a deadline passed) forgets the request.
pub(super) struct Waiting {
    replies: Arc<Replies>,
    id: String,
    pub(super) reply: oneshot::Receiver<Reply>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.replies.waiting.lock() {
            waiting.remove(&self.id);
        }
    }
}

impl Replies {
    pub(super) fn new(key: String) -> Arc<Replies> {
        Arc::new(Replies {
            key,
            waiting: Mutex::default(),
        })
    }

    /// Waits for the reply to the request with message id `id`.
    pub(super) fn wait(self: &Arc<Self>, id: &str) -> Waiting {
        let (sender, reply) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id.to_owned(), sender);
        }
        Waiting {
            replies: self.clone(),
            id: id.to_owned(),
            reply,
        }
    }

    fn deliver(&self, value: Vec<u8>) {
        let Some((headers, payload)) = frame::decode(value.into()) else {
            return;
        };
        let Some(id) = headers.get(REPLY_FOR).and_then(|v| v.to_str().ok()) else {
            return;
        };
        let sender = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.remove(id));
        if let Some(sender) = sender {
            let _ = sender.send(Reply {
                status: Reply::status_of(&headers),
                headers,
                payload,
            });
        }
    }
}

/// Pops replies from the connection's list until the connection is dropped.
pub(super) async fn listen(replies: Weak<Replies>, key: String, mut connection: ConnectionManager) {
    let mut reconnect = Reconnect::new();
    while replies.strong_count() > 0 {
        let popped: redis::RedisResult<Option<(String, Vec<u8>)>> =
            super::command("BLPOP", 2, key.len() + 8)
                .arg(&key)
                .arg(POP_WAIT_SECONDS)
                .query_async(&mut connection)
                .await;
        match popped {
            Ok(Some((_, value))) => {
                reconnect.succeeded();
                let Some(replies) = replies.upgrade() else {
                    return;
                };
                replies.deliver(value);
                // Under load many replies wait: take them a batch per round trip rather
                // than one per blocking pop.
                loop {
                    let batch: redis::RedisResult<Option<Vec<Vec<u8>>>> =
                        super::command("LPOP", 2, key.len() + 8)
                            .arg(&key)
                            .arg(DRAIN_BATCH)
                            .query_async(&mut connection)
                            .await;
                    match batch {
                        Ok(Some(values)) if !values.is_empty() => {
                            values.into_iter().for_each(|value| replies.deliver(value));
                        }
                        _ => break,
                    }
                }
            }
            Ok(None) => reconnect.succeeded(),
            Err(e) => {
                let wait = reconnect.failed();
                tracing::debug!(error = %e, "redis replies");
                // Capped below the backoff's longest step: a reply waits for this loop, so
                // it looks again soon once Redis is back (the manager backs off itself).
                tokio::time::sleep(wait.min(Duration::from_secs(2))).await;
            }
        }
    }
}
