use hosted::prelude::*;

#[hosted_service(backoff = "1s..1m")]
async fn consume(stop: CancellationToken) {
    stop.cancelled().await
}

fn main() {}
