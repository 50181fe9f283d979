#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    async fn list(&self) -> ServiceResult<String>;
}

fn main() {}
