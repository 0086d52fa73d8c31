//! The error every parser of the grammar returns.

use std::fmt;

/// Which part of the grammar a value was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Grammar {
    /// A duration (`"1m30s"`).
    Duration,
    /// A backoff range (`"1s..5m"`).
    Backoff,
    /// A cron line (`"*/5 * * * *"`, `"@hourly"`).
    Cron,
    /// A time zone (`"Europe/Berlin"`, `"UTC"`, `"local"`).
    Zone,
}

/// A value that does not follow the grammar. Its message is in rustc's
/// voice: what is wrong, and what to write instead; the macros show it on
/// the literal, `build()` beside the job's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    grammar: Grammar,
    message: String,
}

impl ParseError {
    pub(crate) fn new(grammar: Grammar, message: String) -> ParseError {
        ParseError { grammar, message }
    }

    /// What the value was read as.
    pub fn grammar(&self) -> Grammar {
        self.grammar
    }

    /// What is wrong and how to fix it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// The message, for code that reports problems as text.
impl From<ParseError> for String {
    fn from(error: ParseError) -> String {
        error.message
    }
}
