//! Depends on the crate of jobs `hosted-test-jobs` and names it (the
//! one-line fix), so its jobs reach the host.

use hosted_test_jobs as _;

#[path = "linking_host.rs"]
mod linking_host;

fn main() {
    linking_host::main();
}
