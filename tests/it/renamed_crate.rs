//! `#[service_interface(crate = "...")]` for a dependency renamed in Cargo.toml (here the
//! `sdk` crate under another name): the generated client calls that path.

use crate::support;

use crate::support::{once, Reply, Scripted};
use renamed_sdk::prelude::*;

/// A service of numbers.
#[service_interface(name = "svc", crate = "renamed_sdk")]
pub(crate) trait Numbers {
    /// One number.
    #[service_call(GET, "/numbers/<id>")]
    async fn number(&self, id: u64) -> ServiceResult<u64>;
}

#[tokio::test]
async fn a_renamed_sdk_crate_is_named_with_crate() {
    let server = Scripted::start(Reply::json(serde_json::json!(42))).await;
    let sdk = support::sdk_for(&server.url, once());
    let numbers = NumbersClient::new(&sdk);
    assert_eq!(numbers.number(7).await.expect("served"), 42);
    assert_eq!(server.seen()[0].uri, "/numbers/7");
}
