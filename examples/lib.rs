//! Runnable examples of `hosted`; each is a file beside this one. Run one
//! with `cargo run --example NAME`.
