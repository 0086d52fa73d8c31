//! What the host reports while it runs, read from the model: metrics
//! through the `metrics` facade (feature `metrics`).

#[cfg(feature = "metrics")]
pub(crate) mod telemetry;
