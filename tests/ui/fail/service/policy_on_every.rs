use hosted::prelude::*;

#[every("5s", on_failure = "restart")]
async fn tick() {}

fn main() {}
