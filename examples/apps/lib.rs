//! Larger examples of `hosted`, each a file beside this one:
//! `cargo run -p hosted-example-apps --example grace_period` (a job with a
//! transaction per run on an embedded SQLite database) and
//! `cargo run -p hosted-example-apps --example queue_web` (an axum app whose
//! page feeds the host's work queue). They live apart from `scheduler` so
//! that its first build stays light.
