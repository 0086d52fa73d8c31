//! How a run ends: [`Outcome`], what a job's return value becomes
//! ([`IntoOutcome`]), and [`Cancelled`], the error that marks a cancellation
//! the host caused.

use std::any::Any;
use std::fmt;

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The job returned `()` or `Ok(())`.
    Succeeded,
    /// The job returned `Err`, or an argument could not be built; holds the
    /// error's text (`{:#}`, so an `anyhow` chain is shown whole).
    Failed(String),
    /// The job panicked; holds the panic's message.
    Panicked(String),
    /// The job was still running when the shutdown timeout ran out, and was
    /// dropped.
    Aborted,
    /// The job returned [`Cancelled`] after the host's stop began: a
    /// cancellation the host caused, never counted as a failure.
    Cancelled,
    /// A queued item that never ran: the host stopped first (see
    /// [`TaskQueue`](crate::TaskQueue)).
    NotRun,
}

impl Outcome {
    /// Whether the run succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }

    /// Whether the run failed: returned `Err`, panicked, or was aborted. (An
    /// item that never ran did not fail.)
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed(_) | Outcome::Panicked(_) | Outcome::Aborted
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded => f.write_str("succeeded"),
            Outcome::Failed(error) => write!(f, "failed: {error}"),
            Outcome::Panicked(message) => write!(f, "panicked: {message}"),
            Outcome::Aborted => f.write_str("aborted at the shutdown deadline"),
            Outcome::Cancelled => f.write_str("cancelled by the host's stop"),
            Outcome::NotRun => f.write_str("not run: the host stopped first"),
        }
    }
}

/// A return type a job can have: `()` or `Result<(), E>` for any
/// `E: Display` (so `anyhow::Result<()>` and your own error types work).
///
/// An error that is, or wraps, [`Cancelled`] becomes
/// [`Outcome::Cancelled`] (found directly, inside a `Box<dyn Error>` or
/// `std::io::Error`, or, with the default `anyhow` feature, inside an
/// `anyhow::Error`, anywhere in its chain of sources).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type a job can have",
    label = "return `()` or `Result<(), E>` where `E: Display`",
    note = "`anyhow::Result<()>` and `Result<(), MyError>` both work; a job's result is logged, not returned to a caller"
)]
pub trait IntoOutcome {
    /// Converts the job's return value.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Outcome::Succeeded
    }
}

impl<E: fmt::Display + 'static> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(()) => Outcome::Succeeded,
            Err(error) if is_cancelled(&error) => Outcome::Cancelled,
            Err(error) => Outcome::Failed(format!("{error:#}")),
        }
    }
}

/// The error a job returns when it stopped because the host asked it to:
/// the `OperationCanceledException` of .NET. After the host's stop began, a
/// run that ends with it (or an error wrapping it) is cancelled, not failed.
///
/// # Examples
///
/// ```
/// use hosted::prelude::*;
/// use hosted::Cancelled;
///
/// #[hosted_service]
/// async fn consume(stop: CancellationToken) -> anyhow::Result<()> {
///     loop {
///         let Some(message) = stop.run_until_cancelled(next_message()).await else {
///             return Err(Cancelled.into());
///         };
///         handle(message?).await?;
///     }
/// }
/// # async fn next_message() -> anyhow::Result<String> { Ok(String::new()) }
/// # async fn handle(_: String) -> anyhow::Result<()> { Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled by the host's stop")
    }
}

impl std::error::Error for Cancelled {}

/// Whether `error` is [`Cancelled`] or wraps it. Uses `Any` to look inside
/// the error types that carry a chain of sources.
fn is_cancelled<E: 'static>(error: &E) -> bool {
    fn in_chain(mut error: Option<&(dyn std::error::Error + 'static)>) -> bool {
        while let Some(e) = error {
            if e.is::<Cancelled>() {
                return true;
            }
            // `io::Error::source` skips the error it wraps: look inside.
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                if in_chain(Some(inner)) {
                    return true;
                }
            }
            error = e.source();
        }
        false
    }
    let any = error as &dyn Any;
    if any.is::<Cancelled>() {
        return true;
    }
    if let Some(e) = any.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>() {
        return in_chain(Some(&**e));
    }
    if let Some(e) = any.downcast_ref::<Box<dyn std::error::Error + Send>>() {
        return in_chain(Some(&**e));
    }
    if let Some(e) = any.downcast_ref::<Box<dyn std::error::Error>>() {
        return in_chain(Some(&**e));
    }
    if let Some(e) = any.downcast_ref::<std::io::Error>() {
        return in_chain(
            e.get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
        );
    }
    #[cfg(feature = "anyhow")]
    if let Some(e) = any.downcast_ref::<anyhow::Error>() {
        return e.chain().any(|cause| cause.is::<Cancelled>());
    }
    false
}

/// The text of a panic's payload: its message when it has one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
