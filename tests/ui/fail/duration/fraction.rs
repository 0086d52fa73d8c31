use hosted::prelude::*;

#[every("1.5s")]
async fn tick() {}

fn main() {}
