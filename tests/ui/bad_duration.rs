#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users")]
    #[timeout("soon")]
    async fn list(&self) -> ServiceResult<String>;
}

fn main() {}
