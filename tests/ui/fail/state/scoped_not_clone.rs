use hosted::prelude::*;

struct Connection;

#[every("5s")]
async fn tick(Scoped(_conn): Scoped<Connection>) {}

fn main() {}
