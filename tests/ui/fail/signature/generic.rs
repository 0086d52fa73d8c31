use hosted::prelude::*;

#[every("5s")]
async fn tick<T: Default>() {}

fn main() {}
