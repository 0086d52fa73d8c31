use hosted::prelude::*;

#[every("5s", tz = "Europe/Berlin")]
async fn tick() {}

fn main() {}
