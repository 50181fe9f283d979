#![allow(dead_code)]
use sdk::prelude::*;

struct UserId(u64);

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, id: UserId) -> ServiceResult<String>;
}

fn main() {}
