//! The services' contracts, as their callers see them. `#[service_interface]` generates a
//! client for each (`UsersClient`, `OrdersClient`, `PaymentsClient`) that implements the
//! trait through the SDK's pipeline: discovery, load balancing, breakers, retries, cache.

use sdk::prelude::*;

use super::model::{NewOrder, NewPayment, Order, Payment, User};

/// user-service.
#[service_interface(name = "user-service")]
pub(crate) trait Users {
    /// One customer. Customers change rarely: answers are cached for 30 s.
    #[service_call(GET, "/users/<id>")]
    #[cached(ttl = "30s")]
    #[timeout("1s")]
    async fn user(&self, id: u64) -> ServiceResult<User>;
}

/// order-service.
#[service_interface(name = "order-service")]
pub(crate) trait Orders {
    /// Places an order. A POST: never retried, since a retry could place it twice.
    #[service_call(POST, "/orders")]
    #[timeout("2s")]
    async fn place(&self, #[body] order: NewOrder) -> ServiceResult<Order>;

    /// A customer's orders.
    #[service_call(GET, "/users/<user_id>/orders")]
    #[retry(max_attempts = 2, delay = "20ms")]
    #[timeout("1s")]
    async fn orders_of(&self, user_id: u64) -> ServiceResult<Vec<Order>>;
}

/// payment-service.
#[service_interface(name = "payment-service")]
pub(crate) trait Payments {
    /// Charges an order. Three failures in a row open this endpoint's breaker for 2 s, so a
    /// dead payment service costs callers nothing while it is down.
    #[service_call(POST, "/payments")]
    #[circuit_breaker(failure_threshold = 3, success_threshold = 1, recovery_timeout = "2s")]
    #[timeout("1s")]
    async fn charge(&self, #[body] payment: NewPayment) -> ServiceResult<Payment>;

    /// The latest charges; its own breaker, same settings. A caller alone waits up to 5 s;
    /// the dashboard's 1 s deadline cuts that short there.
    #[service_call(GET, "/payments/recent")]
    #[circuit_breaker(failure_threshold = 3, success_threshold = 1, recovery_timeout = "2s")]
    #[timeout("5s")]
    async fn recent(&self) -> ServiceResult<Vec<Payment>>;
}
