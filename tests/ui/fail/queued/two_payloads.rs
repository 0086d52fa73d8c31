use hosted_postgres::Payload;

#[hosted_postgres::queued]
async fn send(Payload(_a): Payload<u32>, Payload(_b): Payload<String>) {}

fn main() {}
