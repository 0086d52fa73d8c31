use hosted::prelude::*;

#[hosted_service("5s")]
async fn consume(stop: CancellationToken) {
    stop.cancelled().await
}

fn main() {}
