use hosted::prelude::*;

#[every("1m", initial_delay = "soon")]
async fn tick() {}

fn main() {}
