use hosted::prelude::*;

#[hosted_service(scope = "singleton", on_crash = "rerun")]
async fn leader(stop: CancellationToken) {
    stop.cancelled().await;
}

fn main() {}
