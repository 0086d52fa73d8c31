#[hosted_postgres::queued("5s")]
async fn send() {}

fn main() {}
