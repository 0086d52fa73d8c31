use hosted::prelude::*;

#[cron("0 0 * * *", tz = "Mars/Olympus_Mons")]
async fn sweep() {}

fn main() {}
