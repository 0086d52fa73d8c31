use hosted::prelude::*;

#[every("1s", jitter = "1s")]
async fn tick() {}

fn main() {}
