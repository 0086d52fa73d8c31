use hosted::FromRef;

#[derive(Clone)]
struct Pool;

#[derive(Clone, FromRef)]
struct AppState {
    #[from_ref(ignore)]
    pool: Pool,
}

fn main() {}
