use hosted::prelude::*;

#[hosted_service(on_failure = "ignore")]
#[derive(Default)]
struct Cache;

fn main() {}
