use hosted::prelude::*;

#[every("5s", colour = "red")]
async fn tick() {}

fn main() {}
