//! Named fan-out: run calls concurrently, get a result per name.
//!
//! Each call keeps its own type: [`Batch::add`] returns a typed [`BatchKey`], and
//! [`BatchResults::take`] hands back the `ServiceResult<T>` itself, with no JSON round
//! trip. One call's failure never hides another's success; calls still running when the
//! batch deadline passes come back as [`ServiceError::Cancelled`].
//!
//! ```no_run
//! # use sdk::prelude::*;
//! # use std::time::Duration;
//! # #[derive(serde::Deserialize)] struct User; #[derive(serde::Deserialize)] struct Order;
//! # async fn run(sdk: ServiceSdk) -> ServiceResult<()> {
//! let users = sdk.get_client("user-service");
//! let orders = sdk.get_client("order-service");
//! let mut batch = sdk.batch().concurrency(8).deadline(Duration::from_secs(2));
//! let user = batch.add("user", users.get("/users/42").send::<User>());
//! let recent = batch.add("orders", orders.get("/orders?user=42").send::<Vec<Order>>());
//! let mut results = batch.run().await;
//! let user: User = results.take(&user)?;
//! let recent: Vec<Order> = results.take(&recent).unwrap_or_default();
//! # Ok(()) }
//! ```

use std::{
    any::Any, collections::HashMap, fmt, future::Future, marker::PhantomData, pin::Pin,
    time::Duration,
};

use futures_util::{stream::FuturesUnordered, FutureExt, StreamExt};

use crate::error::{ServiceError, ServiceResult};

type AnyValue = Box<dyn Any + Send>;
type Call = Pin<Box<dyn Future<Output = (usize, Result<AnyValue, ServiceError>)> + Send>>;

/// A set of named calls to run together.
#[must_use = "a batch does nothing until it is run"]
pub struct Batch {
    names: Vec<String>,
    calls: Vec<Call>,
    concurrency: usize,
    deadline: Option<Duration>,
}

/// A typed handle to one call's result in a [`Batch`].
#[derive(Debug)]
pub struct BatchKey<T> {
    index: usize,
    _type: PhantomData<fn() -> T>,
}

impl Batch {
    /// An empty batch: at most 64 calls at once, no deadline.
    pub fn new() -> Self {
        Batch {
            names: Vec::new(),
            calls: Vec::new(),
            concurrency: 64,
            deadline: None,
        }
    }

    /// Runs at most `limit` calls at once (default 64).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Stops waiting after `deadline`; unfinished calls become `Cancelled` (default: none).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Adds a named call.
    pub fn add<T, F>(&mut self, name: impl Into<String>, call: F) -> BatchKey<T>
    where
        F: Future<Output = ServiceResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let index = self.calls.len();
        self.names.push(name.into());
        self.calls.push(Box::pin(
            call.map(move |r| (index, r.map(|v| Box::new(v) as AnyValue))),
        ));
        BatchKey {
            index,
            _type: PhantomData,
        }
    }

    /// Runs every call and collects a result per name.
    pub async fn run(self) -> BatchResults {
        let Batch {
            names,
            calls,
            concurrency,
            deadline,
        } = self;
        let mut results: Vec<Option<Result<AnyValue, ServiceError>>> =
            (0..names.len()).map(|_| None).collect();
        let mut pending = calls.into_iter();
        let mut running = FuturesUnordered::new();
        running.extend(pending.by_ref().take(concurrency));
        let deadline =
            deadline.map(|d| crate::clock::instant_after(tokio::time::Instant::now(), d));
        loop {
            let next = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, running.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => running.next().await,
            };
            let Some((index, result)) = next else { break };
            results[index] = Some(result);
            running.extend(pending.next());
        }
        let results = results
            .into_iter()
            .map(|r| r.unwrap_or(Err(ServiceError::Cancelled)))
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        BatchResults {
            names,
            index,
            results,
        }
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("names", &self.names)
            .field("concurrency", &self.concurrency)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The outcome of every call in a batch, by name.
pub struct BatchResults {
    names: Vec<String>,
    index: HashMap<String, usize>,
    results: Vec<Result<AnyValue, ServiceError>>,
}

impl BatchResults {
    /// Takes one call's result out (a second take of the same key is `Cancelled`). A key from
    /// another batch is refused with `InvalidRequest`.
    pub fn take<T: 'static>(&mut self, key: &BatchKey<T>) -> ServiceResult<T> {
        let foreign = || ServiceError::InvalidRequest {
            service: "batch".into(),
            reason: "this BatchKey belongs to another batch".into(),
        };
        let Some(slot) = self.results.get_mut(key.index) else {
            return Err(foreign());
        };
        match std::mem::replace(slot, Err(ServiceError::Cancelled)) {
            Ok(value) => match value.downcast::<T>() {
                Ok(value) => Ok(*value),
                Err(value) => {
                    *slot = Ok(value);
                    Err(foreign())
                }
            },
            Err(e) => Err(e),
        }
    }

    /// One call's result by name, borrowed; `None` if no call has that name or `T` is not its
    /// type.
    pub fn get<T: 'static>(&self, name: &str) -> Option<Result<&T, &ServiceError>> {
        let result = &self.results[*self.index.get(name)?];
        match result {
            Ok(value) => value.downcast_ref::<T>().map(Ok),
            Err(e) => Some(Err(e)),
        }
    }

    /// Every call of type `T`, in the order added, with its name.
    pub fn iter<T: 'static>(&self) -> impl Iterator<Item = (&str, Result<&T, &ServiceError>)> {
        self.names
            .iter()
            .zip(&self.results)
            .filter_map(|(name, result)| match result {
                Ok(value) => value.downcast_ref::<T>().map(|v| (name.as_str(), Ok(v))),
                Err(e) => Some((name.as_str(), Err(e))),
            })
    }

    /// The names of the calls that succeeded.
    pub fn succeeded(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .zip(&self.results)
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n.as_str())
    }

    /// The calls that failed, with their errors.
    pub fn failed(&self) -> impl Iterator<Item = (&str, &ServiceError)> {
        self.names
            .iter()
            .zip(&self.results)
            .filter_map(|(n, r)| r.as_ref().err().map(|e| (n.as_str(), e)))
    }

    /// How many calls the batch had.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether the batch had no calls.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

impl fmt::Debug for BatchResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, result) in self.names.iter().zip(&self.results) {
            match result {
                Ok(_) => map.entry(name, &"ok"),
                Err(e) => map.entry(name, &e.to_string()),
            };
        }
        map.finish()
    }
}
