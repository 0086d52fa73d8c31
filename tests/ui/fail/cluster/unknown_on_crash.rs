use hosted::prelude::*;

#[cron("0 * * * *", on_crash = "retry")]
async fn hourly() {}

fn main() {}
