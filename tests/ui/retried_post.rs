#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "payments")]
trait Payments {
    #[service_call(POST, "/charges")]
    #[retry(max_attempts = 3)]
    async fn charge(&self, #[body] cents: u64) -> ServiceResult<String>;
}

fn main() {}
