use hosted_postgres::Payload;

struct Plain {
    id: i64,
}

#[hosted_postgres::queued]
async fn send(Payload(plain): Payload<Plain>) {
    let _ = plain.id;
}

fn main() {}
