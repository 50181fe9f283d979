#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users<T> {
    #[service_call(GET, "/users")]
    async fn list(&self) -> ServiceResult<String>;
}

fn main() {}
