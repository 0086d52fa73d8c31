use hosted::prelude::*;

#[cron("61 * * * *")]
async fn sweep() {}

fn main() {}
