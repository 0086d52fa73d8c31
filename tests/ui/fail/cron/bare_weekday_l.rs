use hosted::prelude::*;

#[cron("0 0 * * L")]
async fn sweep() {}

fn main() {}
