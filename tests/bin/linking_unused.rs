//! Depends on the crate of jobs `hosted-test-jobs` but never names it, so
//! the linker leaves it out and its registrations with it: the trap the
//! host warns about at start.

#[path = "linking_host.rs"]
mod linking_host;

fn main() {
    linking_host::main();
}
