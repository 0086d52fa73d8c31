use hosted::prelude::*;

#[hosted_service(order = 1)]
async fn consume(stop: CancellationToken) {
    stop.cancelled().await
}

fn main() {}
