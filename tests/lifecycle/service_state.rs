//! A declared lifecycle service (`#[hosted_service]` on a type) gets the
//! host's state through its constructor; a state the host lacks is a
//! `build()` error naming the service.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hosted::prelude::*;
use hosted::testing::TestHost;

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

/// Where the migrations ran, shared with the test.
#[derive(Clone, Default)]
struct MigrationLog(Arc<Mutex<Vec<&'static str>>>);

/// A declared lifecycle service that gets the host's state through its
/// constructor.
#[hosted_service(order = -1, constructor = "Migrations::new")]
struct Migrations {
    log: MigrationLog,
    counter: Counter,
}

impl Migrations {
    fn new(State(log): State<MigrationLog>, State(counter): State<Counter>) -> Migrations {
        Migrations { log, counter }
    }
}

impl HostedService for Migrations {
    type Error = String;

    async fn start(&mut self, _: CancellationToken) -> Result<(), String> {
        self.log.0.lock().unwrap().push("migrated");
        self.counter.0.fetch_add(100, Ordering::SeqCst);
        Ok(())
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_declared_service_gets_the_hosts_state_through_its_constructor() {
    let log = MigrationLog::default();
    let counter = Counter::default();
    let host = Host::builder()
        .only_jobs(["Migrations"])
        .state(log.clone())
        .state(counter.clone())
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    assert_eq!(*log.0.lock().unwrap(), ["migrated"]);
    assert_eq!(counter.0.load(Ordering::SeqCst), 100);
    assert!(test.stop().await.is_clean());
}

#[test]
fn a_declared_service_whose_constructor_needs_a_missing_state_is_a_build_error() {
    let error = Host::builder()
        .only_jobs(["Migrations"])
        .state(Counter::default())
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(
            "service `Migrations`'s constructor takes `State<service_state::MigrationLog>`"
        ),
        "{text}"
    );
}
