use hosted::prelude::*;

#[cron("* * *")]
async fn sweep() {}

fn main() {}
