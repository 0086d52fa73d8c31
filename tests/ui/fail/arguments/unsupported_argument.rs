use hosted::prelude::*;

#[every("5s")]
async fn tick(run: Run, config: String) {
    println!("{} {config}", run.number());
}

fn main() {}
