use hosted::prelude::*;

#[every("0s")]
async fn tick() {}

fn main() {}
