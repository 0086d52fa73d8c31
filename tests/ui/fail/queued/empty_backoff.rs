#[hosted_postgres::queued(backoff = "10m..1s")]
async fn send() {}

fn main() {}
