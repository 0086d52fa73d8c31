#[hosted_postgres::queued]
fn send() {}

fn main() {}
