use hosted::prelude::*;

#[every("1m", scope = "instance", missed = "once")]
async fn refresh_cache() {}

fn main() {}
