//! The instance and its connection: who this process is to the database,
//! the pool, and the checks made before anything runs.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::Error;
use crate::leases::LeaseOptions;

/// This process as an instance of the cluster.
pub(crate) struct Instance {
    pub(crate) id: String,
    pub(crate) host_name: String,
    pub(crate) pid: u32,
}

impl Instance {
    /// A fresh id: host, process id and a random suffix (a process that
    /// reuses a dead one's pid still gets a new id).
    pub(crate) fn fresh() -> Instance {
        let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        let pid = std::process::id();
        // `RandomState` is seeded from the OS's randomness per process;
        // the time and a counter make two instances of one process differ.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let nonce = hasher.finish() as u32;
        let short: String = host_name.chars().take(32).collect();
        Instance {
            id: format!("{short}-{pid}-{nonce:08x}"),
            host_name,
            pid,
        }
    }

    pub(crate) fn application_name(&self) -> String {
        // PostgreSQL keeps 63 bytes of it.
        format!("hosted {}", self.id).chars().take(63).collect()
    }
}

/// A pool on a URL, as [`Cluster::connect_with`] and
/// [`DurableQueue::connect_with`] open it: each connection named after the
/// instance (`application_name`), with keepalives and a statement timeout.
pub(crate) struct Connection {
    pub(crate) pool: Pool,
    /// For a connection of its own (the durable queue's listener).
    pub(crate) config: tokio_postgres::Config,
    /// `host:port (user, database)`, for error messages.
    pub(crate) target: String,
}

impl Connection {
    pub(crate) fn open(
        url: &str,
        instance: &Instance,
        options: &LeaseOptions,
    ) -> Result<Connection, Error> {
        let LeaseOptions {
            pool_size,
            connect_timeout,
            statement_timeout,
            ..
        } = *options;
        let mut config: tokio_postgres::Config = url.parse().map_err(Error::Url)?;
        config.application_name(instance.application_name());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let timeout = format!("-c statement_timeout={}", statement_timeout.as_millis());
        let given = config.get_options().unwrap_or_default().to_owned();
        config.options(if given.is_empty() {
            timeout
        } else {
            format!("{given} {timeout}")
        });
        let target = target_of(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(connect_timeout))
            .wait_timeout(Some(statement_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| Error::Options(format!("could not build the connection pool: {e}")))?;
        Ok(Connection {
            pool,
            config,
            target,
        })
    }
}

/// Checks the server and the credentials with one statement.
pub(crate) async fn check_connection(pool: &Pool, target: &str) -> Result<(), Error> {
    let client = pool
        .get()
        .await
        .map_err(|e| Error::connect_pool(e, target))?;
    client
        .simple_query(crate::sql::PING)
        .await
        .map_err(|e| Error::connect(e, target))?;
    Ok(())
}

/// `host:port` of the first host in `config`, for error messages.
fn target_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("{host}:{port} (user `{user}`, database `{db}`)")
}
