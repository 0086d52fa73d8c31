//! The first example of `hosted`: `cargo run --example scheduler`. The
//! larger ones (a database job, an axum app) are in the `apps/` package
//! beside it, so that this one builds only what it uses.
