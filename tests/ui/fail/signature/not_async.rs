use hosted::prelude::*;

#[every("5s")]
fn tick() {}

fn main() {}
