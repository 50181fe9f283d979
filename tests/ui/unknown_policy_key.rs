#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users")]
    #[retry(attempts = 3)]
    async fn list(&self) -> ServiceResult<String>;
}

fn main() {}
