#[hosted_postgres::queued(jitter = "1s")]
async fn send() {}

fn main() {}
