use hosted::prelude::*;

#[cron("0 9 * * *", tz = "America/New_Yrok")]
async fn standup() {}

fn main() {}
