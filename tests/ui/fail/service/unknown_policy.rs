use hosted::prelude::*;

#[hosted_service(on_failure = "retry")]
async fn consume(stop: CancellationToken) {
    stop.cancelled().await
}

fn main() {}
