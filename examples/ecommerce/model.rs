//! What the shop's services exchange.

use serde::{Deserialize, Serialize};

/// A customer (user-service).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
}

/// One line of an order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) sku: String,
    pub(crate) quantity: u32,
    pub(crate) unit_cents: u64,
}

/// An order as the gateway asks for it (order-service).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NewOrder {
    pub(crate) user_id: u64,
    pub(crate) lines: Vec<Line>,
}

/// A placed order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) user_id: u64,
    pub(crate) lines: Vec<Line>,
    pub(crate) total_cents: u64,
}

/// A charge for an order (payment-service).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NewPayment {
    pub(crate) order_id: u64,
    pub(crate) amount_cents: u64,
}

/// A charge that went through.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Payment {
    pub(crate) id: u64,
    pub(crate) order_id: u64,
    pub(crate) amount_cents: u64,
}
