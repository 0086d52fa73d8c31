//! The durable-orders example as a real process on a database of its own:
//! orders are placed with their follow-up work in one transaction, each is
//! confirmed, a card charge is retried after its failed first attempt, and
//! SIGTERM stops it with exit code 0.

#[path = "../../tests/support/mod.rs"]
mod support;

use hosted_postgres::tokio_postgres::{self, NoTls};
use support::start_example;

fn base() -> String {
    std::env::var("HOSTED_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

fn admin(sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&format!("{}/postgres", base()), NoTls)
            .await
            .expect("PostgreSQL (`.ci/run` starts it)");
        tokio::spawn(connection);
        client.batch_execute(sql).await.expect(sql);
    });
}

#[test]
fn orders_are_confirmed_exactly_once_and_a_failed_charge_is_retried() {
    let name = format!("hosted_example_orders_{}", std::process::id());
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    admin(&format!("CREATE DATABASE {name}"));
    let url = format!("{}/{name}", base());
    let mut example = start_example(
        "durable_orders",
        &[("DATABASE_URL", &url), ("DASHBOARD_ADDR", "127.0.0.1:0")],
    );
    example.wait_for("durable queue started");
    example.wait_for("order placed");
    example.wait_for("order confirmed");
    example.wait_for("item failed; retrying");
    example.wait_for("card charged");
    example.signal(libc::SIGTERM);
    let (status, output) = example.exit();
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("attempt=2"), "{output}");
}
