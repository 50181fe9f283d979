//! The one group-committing writer of the servers' durable stores (the registry's and the
//! event bus's): one task takes the writes in order from a queue, and each turn takes every
//! write waiting (up to a batch's bound) into one [`Commit::commit`], so that one sync of the
//! disk serves them all (group commit) instead of one each. Each write is answered by the
//! committer, only once it is durable (or refused, or failed).
//!
//! What a batch does is the store's own: the registry plans its batch against memory and
//! writes it all or nothing; the event bus writes its batch in a few multi-row statements and
//! tries a failed batch again one write at a time. What they share, and what lives here, is
//! the queue, its bound and how a batch is taken (tokio's `recv_many`).
//!
//! Why by hand: sqlx has no group commit, and a pool of connections does not give one on
//! SQLite (a single writer at a time, each commit synced on its own).

use std::future::Future;

use tokio::sync::mpsc;

/// A store's writes, committed a batch at a time.
pub trait Commit: Send + 'static {
    /// One write and where its answer goes.
    type Job: Send + 'static;

    /// Makes `batch` (in the order the writes came) durable, then answers each write.
    fn commit(&mut self, batch: Vec<Self::Job>) -> impl Future<Output = ()> + Send;
}

/// Starts the writer over `committer`: a queue of `4 × max_batch` writes, each turn taking
/// every write waiting, `max_batch` at most. It stops once every sender is dropped (after
/// the writes already queued).
pub fn spawn<C: Commit>(mut committer: C, max_batch: usize) -> mpsc::Sender<C::Job> {
    let max_batch = max_batch.max(1);
    let (sender, mut jobs) = mpsc::channel(4 * max_batch);
    tokio::spawn(async move {
        let mut waiting = Vec::with_capacity(max_batch);
        while jobs.recv_many(&mut waiting, max_batch).await > 0 {
            committer.commit(std::mem::take(&mut waiting)).await;
        }
    });
    sender
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::oneshot;

    use super::*;

    /// Records the size of each batch, and answers each write with its batch's number.
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl Commit for Recorder {
        type Job = (u32, oneshot::Sender<usize>);

        async fn commit(&mut self, batch: Vec<Self::Job>) {
            let number = {
                let mut sizes = self.0.lock().expect("sizes");
                sizes.push(batch.len());
                sizes.len()
            };
            for (_, reply) in batch {
                let _ = reply.send(number);
            }
        }
    }

    /// Writes queued while one commit runs go together into the next, a batch's bound at
    /// most; every write is answered.
    #[tokio::test(start_paused = true)]
    async fn writes_waiting_go_into_one_commit_up_to_the_bound() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let queue = spawn(Recorder(sizes.clone()), 4);
        let mut answers = Vec::new();
        for n in 0..10 {
            let (reply, answer) = oneshot::channel();
            queue.send((n, reply)).await.expect("queued");
            answers.push(answer);
        }
        let mut numbers = Vec::new();
        for answer in answers {
            numbers.push(answer.await.expect("answered"));
        }
        assert_eq!(*sizes.lock().expect("sizes"), [4, 4, 2]);
        assert_eq!(numbers, [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
    }
}
