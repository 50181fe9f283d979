#![allow(dead_code)]
use sdk::prelude::*;

// The generated code names the crate given: a path that resolves nowhere says so.
#[service_interface(name = "users", crate = "nowhere")]
trait Users {
    #[service_call(GET, "/users")]
    async fn users(&self) -> ServiceResult<String>;
}

fn main() {}
