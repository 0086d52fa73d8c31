use hosted::prelude::*;

#[hosted_service]
#[derive(Default)]
struct Cache;

fn main() {}
