use sdk::ServiceResult;
use sdk_messaging::message_interface;

#[message_interface]
pub trait Users {
    #[message_pattern("user.*")]
    async fn any(&self, id: u64) -> ServiceResult<u64>;

    #[event_pattern("user.created")]
    async fn created(&self, id: u64) -> ServiceResult<u64>;

    #[message_pattern("user.pair")]
    async fn pair(&self, a: u64, b: u64) -> ServiceResult<u64>;

    async fn unmarked(&self) -> ServiceResult<()>;

    #[message_pattern("user.by_ref")]
    async fn by_ref(&self, user: &str) -> ServiceResult<()>;

    #[event_pattern("user.deleted")]
    #[idempotent]
    fn deleted(&self) -> ServiceResult<()>;
}

fn main() {}
