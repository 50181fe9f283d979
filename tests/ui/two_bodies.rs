#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(POST, "/users")]
    async fn create(&self, #[body] name: String, #[body] email: String) -> ServiceResult<String>;
}

fn main() {}
