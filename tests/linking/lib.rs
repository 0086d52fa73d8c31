//! Jobs declared in a library crate, as an application with a crate of
//! jobs has them: registered through `inventory`, so they reach a host only
//! if the binary links this crate.

use hosted::prelude::*;

/// A job of the library.
#[every("1h")]
pub async fn hourly_from_a_library() {}

/// A service of the library.
#[hosted_service]
pub async fn service_from_a_library(stop: CancellationToken) {
    stop.cancelled().await;
}
