use hosted::prelude::*;

#[cron("0 0 * * MON-FUN")]
async fn sweep() {}

fn main() {}
