use hosted::prelude::*;

#[every(5)]
async fn tick() {}

fn main() {}
