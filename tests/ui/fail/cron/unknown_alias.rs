use hosted::prelude::*;

#[cron("@fortnightly")]
async fn sweep() {}

fn main() {}
