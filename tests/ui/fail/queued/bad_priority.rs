#[hosted_postgres::queued(priority = 40000)]
async fn send() {}

fn main() {}
