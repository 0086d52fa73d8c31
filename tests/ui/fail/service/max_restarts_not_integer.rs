use hosted::prelude::*;

#[hosted_service(on_failure = "restart", max_restarts = "ten")]
async fn consume(stop: CancellationToken) {
    stop.cancelled().await
}

fn main() {}
