//! What both linking binaries do: start a host with every registered job
//! and service, print its job names, stop it.

use hosted::Host;

#[tokio::main(flavor = "current_thread")]
pub(crate) async fn main() {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .init();
    let host = Host::builder().build().expect("host configuration");
    println!("jobs seen: {:?}", host.job_names().collect::<Vec<_>>());
    let running = host.start().await.expect("startup");
    assert!(running.stop().await.is_clean());
}
