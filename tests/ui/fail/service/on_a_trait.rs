use hosted::prelude::*;

#[hosted_service]
trait Worker {}

fn main() {}
