#[hosted_postgres::queued(timeout = "5 parsecs")]
async fn send() {}

fn main() {}
