use hosted::prelude::*;

#[every("5s", name = "a", name = "b")]
async fn tick() {}

fn main() {}
