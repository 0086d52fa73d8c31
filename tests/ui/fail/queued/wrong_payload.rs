use hosted_postgres::{DurableQueue, Payload};

struct Welcome {
    user_id: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Invoice {
    id: i64,
}

#[hosted_postgres::queued(queue = "mail")]
async fn send_invoice(Payload(invoice): Payload<Invoice>) {
    let _ = invoice.id;
}

async fn enqueue(queue: &DurableQueue) {
    let _ = send_invoice::enqueue(queue, Welcome { user_id: 7 }).await;
}

fn main() {}
