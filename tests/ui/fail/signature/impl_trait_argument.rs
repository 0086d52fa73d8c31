use hosted::prelude::*;

#[every("5s")]
async fn tick(value: impl std::fmt::Display) {
    println!("{value}");
}

fn main() {}
