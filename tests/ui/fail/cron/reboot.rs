use hosted::prelude::*;

#[cron("@reboot")]
async fn warm_up() {}

fn main() {}
