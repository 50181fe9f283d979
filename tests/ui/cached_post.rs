#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(POST, "/users")]
    #[cached(ttl = "5m")]
    async fn create(&self, #[body] name: String) -> ServiceResult<String>;
}

fn main() {}
