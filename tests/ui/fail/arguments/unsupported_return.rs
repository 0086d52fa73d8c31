use hosted::prelude::*;

#[every("5s")]
async fn tick() -> i32 {
    42
}

fn main() {}
