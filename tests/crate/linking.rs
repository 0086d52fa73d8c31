//! The inventory linking trap, in a workspace of two crates: jobs declared
//! in a library crate (`tests/linking`) that the binary depends on but
//! never names are left out by the linker. The host says so at start, with
//! the one-line fix; naming the crate brings the jobs back, and no warning.

use std::process::Command;

fn run(binary: &str) -> String {
    let output = Command::new(binary)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the binary");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn a_host_whose_binary_links_no_registered_job_warns_with_the_fix() {
    let output = run(env!("CARGO_BIN_EXE_linking-unused"));
    assert!(output.contains("jobs seen: []"), "{output}");
    assert!(output.contains("WARN"), "{output}");
    assert!(
        output.contains("use your_jobs_crate as _;"),
        "the warning gives the fix: {output}"
    );
}

#[test]
fn naming_the_crate_of_jobs_brings_them_back_and_no_warning() {
    let output = run(env!("CARGO_BIN_EXE_linking-used"));
    assert!(
        output.contains("jobs seen: [\"hourly_from_a_library\", \"service_from_a_library\"]"),
        "{output}"
    );
    assert!(!output.contains("WARN"), "{output}");
}
