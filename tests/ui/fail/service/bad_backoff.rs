use hosted::prelude::*;

#[hosted_service(on_failure = "restart", backoff = "5m..1s")]
async fn consume(stop: CancellationToken) {
    stop.cancelled().await
}

fn main() {}
