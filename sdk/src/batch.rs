//! Named fan-out: run calls concurrently, get a result per name.
//!
//! Each call keeps its own type: [`Batch::add`] returns a typed [`BatchKey`], and
//! [`BatchResults::take`] hands back the `ServiceResult<T>` itself, with no JSON round
//! trip. Calls of one type (`ServiceSdk::batch_call`) come back as [`BatchCallResults<T>`]:
//! typed, iterable in the order added, printable. One call's failure never hides another's success; calls still running when the
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

use std::{any::Any, fmt, future::Future, marker::PhantomData, pin::Pin, time::Duration};

use futures_util::{stream::FuturesUnordered, FutureExt, StreamExt};

use crate::error::{ServiceError, ServiceResult};

type AnyValue = Box<dyn Any + Send>;
type Call = Pin<Box<dyn Future<Output = (usize, Result<AnyValue, ServiceError>)> + Send>>;

/// A set of named calls to run together.
#[must_use = "a batch does nothing until it is run"]
pub struct Batch {
    names: Vec<String>,
    types: Vec<&'static str>,
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
            types: Vec::new(),
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
        self.types.push(std::any::type_name::<T>());
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
            types,
            calls,
            concurrency,
            deadline,
        } = self;
        let results = run_all(calls, concurrency, deadline).await;
        BatchResults {
            names,
            types,
            results,
        }
    }
}

/// Runs `calls` (each tagged with its index), at most `concurrency` at once, until they are
/// done or `deadline` passes; a call that never finished is `Cancelled`.
pub(crate) async fn run_all<V, F>(
    calls: Vec<F>,
    concurrency: usize,
    deadline: Option<Duration>,
) -> Vec<ServiceResult<V>>
where
    F: Future<Output = (usize, ServiceResult<V>)>,
{
    let mut results: Vec<Option<ServiceResult<V>>> = (0..calls.len()).map(|_| None).collect();
    let mut pending = calls.into_iter();
    let mut running = FuturesUnordered::new();
    running.extend(pending.by_ref().take(concurrency.max(1)));
    let deadline = deadline.map(|d| crate::clock::instant_after(tokio::time::Instant::now(), d));
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, running.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => running.next().await,
        };
        let Some((index, result)) = next else { break };
        if let Some(slot) = results.get_mut(index) {
            *slot = Some(result);
        }
        running.extend(pending.next());
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ServiceError::Cancelled)))
        .collect()
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

/// The outcome of every call in a [`Batch`], each read through its typed [`BatchKey`].
pub struct BatchResults {
    names: Vec<String>,
    types: Vec<&'static str>,
    results: Vec<Result<AnyValue, ServiceError>>,
}

impl BatchResults {
    /// Takes one call's result out (a second take of the same key is `Cancelled`). A key from
    /// another batch is refused with `InvalidRequest`.
    pub fn take<T: 'static>(&mut self, key: &BatchKey<T>) -> ServiceResult<T> {
        let Some(slot) = self.results.get_mut(key.index) else {
            return Err(foreign_key());
        };
        match std::mem::replace(slot, Err(ServiceError::Cancelled)) {
            Ok(value) => match value.downcast::<T>() {
                Ok(value) => Ok(*value),
                Err(value) => {
                    *slot = Ok(value);
                    Err(foreign_key())
                }
            },
            Err(e) => Err(e),
        }
    }

    /// One call's result, borrowed; `None` only for a key from another batch (or a result
    /// already taken out).
    pub fn get<T: 'static>(&self, key: &BatchKey<T>) -> Option<Result<&T, &ServiceError>> {
        match self.results.get(key.index)? {
            Ok(value) => value.downcast_ref::<T>().map(Ok),
            Err(e) => Some(Err(e)),
        }
    }

    /// The names of the calls, in the order added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
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

fn foreign_key() -> ServiceError {
    ServiceError::InvalidRequest {
        service: "batch".into(),
        reason: "this BatchKey belongs to another batch".into(),
    }
}

/// Shows each call's outcome: `Ok(<the value's type>)` (the values are of many types) or the
/// error.
impl fmt::Debug for BatchResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Shown<'a>(Result<&'static str, &'a ServiceError>);
        impl fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Ok(ty) => write!(f, "Ok(<{ty}>)"),
                    Err(e) => write!(f, "Err({e})"),
                }
            }
        }
        let mut map = f.debug_map();
        for ((name, result), ty) in self.names.iter().zip(&self.results).zip(&self.types) {
            map.entry(name, &Shown(result.as_ref().map(|_| *ty)));
        }
        map.finish()
    }
}

/// The outcome of `ServiceSdk::batch_call`: a `ServiceResult<T>` per name, in the order the
/// calls were given.
///
/// ```
/// # use sdk::{batch::BatchCallResults, ServiceError};
/// # fn show(results: BatchCallResults<u64>) {
/// for (name, result) in &results {
///     match result {
///         Ok(value) => println!("{name}: {value}"),
///         Err(e) => println!("{name} failed: {e}"),
///     }
/// }
/// let total: u64 = results.successes().map(|(_, v)| v).sum();
/// # }
/// ```
pub struct BatchCallResults<T> {
    entries: Vec<(String, ServiceResult<T>)>,
}

impl<T> BatchCallResults<T> {
    pub(crate) fn new(names: Vec<String>, results: Vec<ServiceResult<T>>) -> Self {
        BatchCallResults {
            entries: names.into_iter().zip(results).collect(),
        }
    }

    /// The result of the call named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&ServiceResult<T>> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    /// Every call's name and result, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ServiceResult<T>)> {
        self.entries.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// The calls that succeeded, with their values.
    pub fn successes(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries
            .iter()
            .filter_map(|(n, r)| r.as_ref().ok().map(|v| (n.as_str(), v)))
    }

    /// The calls that failed, with their errors.
    pub fn failed(&self) -> impl Iterator<Item = (&str, &ServiceError)> {
        self.entries
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| (n.as_str(), e)))
    }

    /// How many calls there were.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T> IntoIterator for BatchCallResults<T> {
    type Item = (String, ServiceResult<T>);
    type IntoIter = std::vec::IntoIter<(String, ServiceResult<T>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a BatchCallResults<T> {
    type Item = (&'a str, &'a ServiceResult<T>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, ServiceResult<T>)>,
        fn(&'a (String, ServiceResult<T>)) -> (&'a str, &'a ServiceResult<T>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(n, r)| (n.as_str(), r))
    }
}

impl<T: fmt::Debug> fmt::Debug for BatchCallResults<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(n, r)| (n, r)))
            .finish()
    }
}
