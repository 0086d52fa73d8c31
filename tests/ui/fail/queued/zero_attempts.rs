#[hosted_postgres::queued(max_attempts = 0)]
async fn send() {}

fn main() {}
