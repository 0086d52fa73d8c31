use hosted::prelude::*;

#[hosted_service]
#[derive(Default)]
struct Cache<T> {
    items: Vec<T>,
}

fn main() {}
