use hosted::prelude::*;

#[every]
async fn tick() {}

fn main() {}
