use hosted::prelude::*;

struct Cache;

impl Cache {
    #[every("5s")]
    async fn refresh(&self) {}
}

fn main() {}
