#![allow(dead_code)]
use sdk::prelude::*;

#[service_interface(name = "payments")]
trait Payments {
    #[service_call(POST, "/payments")]
    #[hedge(after = "p95")]
    async fn pay(&self, #[body] cents: u64) -> ServiceResult<String>;

    #[service_call(GET, "/payments/<id>")]
    #[hedge(after = "p100", max = 4, within = "1s")]
    async fn get(&self, id: u64) -> ServiceResult<String>;
}

fn main() {}
