use hosted::FromRef;

#[derive(Clone)]
struct Pool;

#[derive(Clone, FromRef)]
enum AppState {
    Ready(Pool),
}

fn main() {}
