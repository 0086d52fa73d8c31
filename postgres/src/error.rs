//! Errors, each with what to do about it.

use hosted::cluster::BoxError;
use tokio_postgres::error::SqlState;

/// What went wrong talking to the cluster's store. Each message says what
/// to do about it; [`source`](std::error::Error::source) gives the error
/// it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option of [`ClusterOptions`](crate::ClusterOptions) or
    /// [`DurableOptions`](crate::DurableOptions) is out of range.
    #[error("invalid cluster options: {0}")]
    Options(String),
    /// The URL does not parse.
    #[error(
        "invalid PostgreSQL URL: {0}; write it as `postgres://user:password@host:5432/database`"
    )]
    Url(#[source] tokio_postgres::Error),
    /// The server could not be reached, refused the credentials, or lacks
    /// the database; the message says which, and what to check.
    #[error("{message}")]
    Connect {
        /// What failed, and what to check.
        message: String,
        /// The driver's or the pool's error.
        #[source]
        source: BoxError,
    },
    /// The schema could not be created or migrated; the message says why
    /// and what to grant.
    #[error("{message}")]
    Schema {
        /// What failed, and what to grant or upgrade.
        message: String,
        /// The driver's error, unless the schema is newer than this
        /// release knows.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// The cluster has no job of that name.
    #[error("the cluster has no job named `{0}` (a job's row appears when an instance that has the job starts)")]
    UnknownJob(String),
    /// This `Cluster` already serves a host.
    #[error("this `Cluster` already serves a running host; connect one `Cluster` per host")]
    AlreadyStarted,
    /// A statement failed.
    #[error("the database failed: {message}")]
    Database {
        /// What failed, and what to check.
        message: String,
        /// The driver's or the pool's error, if a statement or a
        /// connection failed (not when the store's answer was wrong).
        #[source]
        source: Option<BoxError>,
    },
    /// A payload did not serialize.
    #[error("{message}")]
    Payload {
        /// Which payload, and why.
        message: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// A statement that failed on a connection to `target`.
    pub(crate) fn database(error: tokio_postgres::Error, target: &str) -> Error {
        Error::Database {
            message: describe(&error, target),
            source: Some(Box::new(error)),
        }
    }

    /// A connection the pool for `target` could not give.
    pub(crate) fn pool(error: deadpool_postgres::PoolError, target: &str) -> Error {
        Error::Database {
            message: describe_pool(&error, target),
            source: Some(Box::new(error)),
        }
    }

    /// The store answered, but not as it should have.
    pub(crate) fn store(message: impl Into<String>) -> Error {
        Error::Database {
            message: message.into(),
            source: None,
        }
    }

    /// A connection that could not be opened to `target`.
    pub(crate) fn connect(error: tokio_postgres::Error, target: &str) -> Error {
        Error::Connect {
            message: describe(&error, target),
            source: Box::new(error),
        }
    }

    /// A connection the pool for `target` could not open.
    pub(crate) fn connect_pool(error: deadpool_postgres::PoolError, target: &str) -> Error {
        Error::Connect {
            message: describe_pool(&error, target),
            source: Box::new(error),
        }
    }
}

/// A connection or statement error, described for a person: what failed
/// and what to check.
pub(crate) fn describe(error: &tokio_postgres::Error, target: &str) -> String {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let hint = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            "check the user and password in the URL (and the server's pg_hba.conf)"
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            "create the database first (`createdb`), or fix its name in the URL"
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            "grant the user the privilege named above, or connect as one that has it"
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            "the server has no connection slot left; lower `ClusterOptions::pool_size` or raise the server's `max_connections`"
        } else if *code == SqlState::QUERY_CANCELED {
            "the statement ran past `ClusterOptions::statement_timeout`"
        } else {
            "see the server's log for more"
        };
        return format!(
            "PostgreSQL at {target} said: {} ({}); {hint}",
            db.message(),
            code.code()
        );
    }
    if error.is_closed() {
        return format!("the connection to PostgreSQL at {target} closed: {error}");
    }
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = format!("{cause}: {inner}");
        source = inner.source();
    }
    format!(
        "could not reach PostgreSQL at {target}: {cause}; check that the server runs and that the URL's host and port are right"
    )
}

/// A pool error, described like [`describe`].
pub(crate) fn describe_pool(error: &deadpool_postgres::PoolError, target: &str) -> String {
    use deadpool_postgres::PoolError;
    match error {
        PoolError::Backend(error) => describe(error, target),
        PoolError::Timeout(kind) => format!(
            "no connection to PostgreSQL at {target} within the pool's timeout ({kind:?}); check that the server runs and answers"
        ),
        other => format!("the connection pool for PostgreSQL at {target} failed: {other}"),
    }
}
