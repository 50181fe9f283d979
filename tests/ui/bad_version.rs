use sdk::prelude::*;

#[service_interface(name = "users", version = "two")]
pub trait Users {
    #[service_call(GET, "/users/<id>")]
    async fn user(&self, id: u64) -> ServiceResult<()>;
}

fn main() {}
