use hosted::prelude::*;

// A stray comma: rejected at once, naming the minute field.
#[cron(", * * * *")]
async fn sweep() {}

fn main() {}
