use hosted::prelude::*;

#[hosted_service(scope = "cluster")]
async fn consume(stop: CancellationToken) {
    stop.cancelled().await;
}

fn main() {}
