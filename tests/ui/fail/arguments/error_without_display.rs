use hosted::prelude::*;

#[derive(Debug)]
struct MyError;

#[hosted_service]
async fn consume() -> Result<(), MyError> {
    Err(MyError)
}

fn main() {}
