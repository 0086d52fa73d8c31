use hosted::prelude::*;

#[every("5s", overlap = "sometimes")]
async fn tick() {}

fn main() {}
