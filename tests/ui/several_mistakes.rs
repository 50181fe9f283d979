#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users/<id>")]
    #[timeout("2 fortnights")]
    async fn get(&self, limit: u32) -> ServiceResult<String>;
}

fn main() {}
