use hosted::prelude::*;

#[cron("0 0 31 2 *")]
async fn sweep() {}

fn main() {}
