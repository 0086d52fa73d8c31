//! Running an example as a real process: find its binary, read its output
//! line by line, send it signals, wait for its exit.
//!
//! `cargo test` builds the package's examples before running its tests; the
//! binaries are found beside the test's own executable.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) struct Example {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        binary.display()
    );
    binary
}

impl Drop for Example {
    /// A failed test must not leave the example running: it would hold the
    /// test's output pipe open, and the test runner would wait for it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Example {
    /// Starts the example `name` with `env` set, logging at info level
    /// without colours.
    pub(crate) fn start(name: &str, env: &[(&str, &str)]) -> Example {
        let mut child = Command::new(binary(name))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Example {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a line contains `needle`; kills the example and fails if
    /// none does within 30 s.
    pub(crate) fn wait_for(&mut self, needle: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "no line contained `{needle}`; output:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for a line that contains `prefix` and returns what follows it.
    #[allow(dead_code)]
    pub(crate) fn wait_for_capture(&mut self, prefix: &str) -> String {
        self.wait_for(prefix);
        let line = self.seen.last().expect("the line just seen");
        let start = line.find(prefix).expect("the prefix") + prefix.len();
        line[start..].trim().to_owned()
    }

    pub(crate) fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, not yet waited for.
        #[allow(unsafe_code)]
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal})");
    }

    /// Waits for the exit (10 s at most) and returns its status and the
    /// whole output.
    pub(crate) fn exit(mut self) -> (ExitStatus, String) {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait for the example") {
                // The reader thread ends at EOF, once the pipe drains.
                self.seen.extend(self.lines.iter());
                return (status, self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "the example did not exit within 10 s; output:\n{}",
            self.seen.join("\n")
        );
    }
}
