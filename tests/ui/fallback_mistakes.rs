use sdk::prelude::*;

async fn spare(id: u64, error: ServiceError) -> ServiceResult<()> {
    let _ = (id, error);
    Ok(())
}

#[service_interface(name = "users")]
pub trait Users {
    #[service_call(GET, "/users/<id>")]
    #[fallback(spare, on = [timeout, bad_request])]
    async fn user(&self, id: u64) -> ServiceResult<()>;

    #[service_call(GET, "/users/<id>/orders")]
    #[fallback("spare")]
    async fn orders(&self, id: u64) -> ServiceResult<()>;

    #[service_call(GET, "/users/<id>/tags")]
    #[fallback(spare, when = [timeout])]
    async fn tags(&self, id: u64) -> ServiceResult<()>;
}

fn main() {}
