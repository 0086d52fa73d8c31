//! What the tests of `hosted-postgres` share: a PostgreSQL database of each
//! test's own with the shortened options the tests use ([`pg`]), hosts on a
//! durable queue ([`durable`]), and, from the runtime's tests,
//! [`Probe`], child processes, logs and
//! [`wait_until`].

// Test support, published nowhere: its items are documented where it helps.
#![allow(missing_docs)]

pub mod durable;
pub mod node;
pub mod pg;

pub use hosted_tests::*;
