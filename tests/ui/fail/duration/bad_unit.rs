use hosted::prelude::*;

#[every("5 seconds")]
async fn tick() {}

fn main() {}
