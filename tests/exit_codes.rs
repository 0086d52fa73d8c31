//! Signals and exit codes against a real child process (`bin/probe_host.rs`):
//! SIGINT, SIGTERM and SIGQUIT stop gracefully with code 0; a second SIGINT
//! aborts at once; each kind of failure has its own code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hosted::Report;

struct Probe {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Probe {
    fn start(scenario: &str) -> Probe {
        let mut child = Command::new(env!("CARGO_BIN_EXE_probe-host"))
            .arg(scenario)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start probe-host");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Probe { child, lines }
    }

    /// Waits for a line on stdout; kills the child and fails if it does not
    /// come within 20 s.
    fn expect_line(&mut self, wanted: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line == wanted => return,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("probe-host did not print `{wanted}`");
                }
            }
        }
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, not yet waited for.
        #[allow(unsafe_code)]
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0);
    }

    fn exit(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("probe-host did not exit within 20 s");
    }
}

fn graceful_on(signal: i32) {
    let mut probe = Probe::start("clean");
    probe.expect_line("started");
    probe.signal(signal);
    probe.expect_line("stopping");
    assert_eq!(probe.exit().code(), Some(0));
}

#[test]
fn sigint_stops_gracefully_with_code_0() {
    graceful_on(libc::SIGINT);
}

#[test]
fn sigterm_stops_gracefully_with_code_0() {
    graceful_on(libc::SIGTERM);
}

#[test]
fn sigquit_stops_gracefully_with_code_0() {
    graceful_on(libc::SIGQUIT);
}

#[test]
fn a_second_sigint_aborts_at_once() {
    let mut probe = Probe::start("stuck");
    probe.expect_line("started");
    probe.signal(libc::SIGINT);
    probe.expect_line("stopping");
    let began = Instant::now();
    probe.signal(libc::SIGINT);
    let status = probe.exit();
    assert_eq!(status.code(), Some(i32::from(Report::EXIT_ABORTED)));
    // The shutdown timeout is 60 s: the second signal cut it short.
    assert!(began.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_stop_past_the_timeout_is_aborted_with_code_4() {
    let mut probe = Probe::start("timeout");
    probe.expect_line("started");
    probe.signal(libc::SIGTERM);
    assert_eq!(probe.exit().code(), Some(i32::from(Report::EXIT_ABORTED)));
}

#[test]
fn a_failed_start_exits_with_code_2() {
    let probe = Probe::start("fail-start");
    assert_eq!(
        probe.exit().code(),
        Some(i32::from(Report::EXIT_START_FAILED))
    );
}

#[test]
fn a_failed_service_exits_with_code_1() {
    let mut probe = Probe::start("fail-service");
    probe.expect_line("started");
    assert_eq!(
        probe.exit().code(),
        Some(i32::from(Report::EXIT_SERVICE_FAILED))
    );
}

#[test]
fn a_failed_stop_exits_with_code_3() {
    let mut probe = Probe::start("stop-error");
    probe.expect_line("started");
    probe.signal(libc::SIGTERM);
    assert_eq!(
        probe.exit().code(),
        Some(i32::from(Report::EXIT_STOP_FAILED))
    );
}
