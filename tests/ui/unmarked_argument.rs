#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users")]
    async fn list(&self, limit: u32) -> ServiceResult<String>;
}

fn main() {}
