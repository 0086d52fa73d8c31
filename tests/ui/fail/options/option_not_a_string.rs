use hosted::prelude::*;

#[every("5s", name = 3)]
async fn tick() {}

fn main() {}
