use hosted::prelude::*;

#[cron("0 0 * * *", tz = "europe/berlin")]
async fn sweep() {}

fn main() {}
