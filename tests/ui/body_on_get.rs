#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users")]
    async fn search(&self, #[body] filter: String) -> ServiceResult<String>;
}

fn main() {}
