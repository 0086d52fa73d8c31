use hosted::prelude::*;

#[every("5s", name = "")]
async fn tick() {}

fn main() {}
