#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users/<id>")]
    async fn get<T>(&self, id: T) -> ServiceResult<String>;
}

fn main() {}
