use sdk::prelude::*;

/// Forgets the error argument.
async fn spare(id: u64) -> ServiceResult<()> {
    let _ = id;
    Ok(())
}

#[service_interface(name = "users")]
pub trait Users {
    #[service_call(GET, "/users/<id>")]
    #[fallback(spare)]
    async fn user(&self, id: u64) -> ServiceResult<()>;
}

fn main() {}
