use hosted::Host;

#[derive(Clone)]
struct RequestId(u64);

fn main() {
    let _ = Host::builder().scoped(|| async { RequestId(7) });
}
