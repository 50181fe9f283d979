#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, user_id: u64) -> ServiceResult<String>;
}

fn main() {}
