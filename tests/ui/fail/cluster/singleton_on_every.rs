use hosted::prelude::*;

#[every("5s", scope = "singleton")]
async fn tick() {}

fn main() {}
