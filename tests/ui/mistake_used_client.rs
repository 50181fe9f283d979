#![allow(dead_code)]
use sdk::prelude::*;

// One mistake in the trait: the code using the client reports nothing more.
#[service_interface(name = "users")]
trait Users {
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, user_id: u64) -> ServiceResult<String>;
}

async fn caller(sdk: &ServiceSdk) -> ServiceResult<String> {
    let users = UsersClient::new(sdk);
    users.get_user(7).await
}

fn main() {}
