//! A real child process under test: its stdout read line by line, signals
//! sent to it, its exit waited for. The exit-code tests run `probe-host`
//! with it, and the examples' tests run the examples.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a wait for a line may take before the test fails.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a wait for the exit may take before the test fails.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process whose stdout is read line by line. Dropped while the
/// child still runs, it kills the child: a failed test must not leave it
/// holding the test's output open.
pub struct Process {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    /// Spawns `command` with its stdout piped; `name` labels failures.
    pub fn spawn(name: &str, command: &mut Command) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Sets aside the lines printed so far: the next wait sees only lines
    /// printed from now on.
    pub fn skip_printed(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Whether a line that contains `needle` was printed since the last
    /// wait; does not block.
    pub fn printed(&mut self, needle: &str) -> bool {
        let mut found = false;
        while let Ok(line) = self.lines.try_recv() {
            found |= line.contains(needle);
            self.seen.push(line);
        }
        found
    }

    /// Every line read so far.
    pub fn output_so_far(&self) -> String {
        self.seen.join("\n")
    }

    /// Waits for a line that contains `needle`.
    pub fn wait_for(&mut self, needle: &str) {
        self.wait_until(needle, |line| line.contains(needle));
    }

    /// Waits for a line that is exactly `wanted`.
    pub fn wait_for_line(&mut self, wanted: &str) {
        self.wait_until(wanted, |line| line == wanted);
    }

    /// Waits for a line that contains `prefix` and returns what follows it,
    /// trimmed.
    pub fn wait_for_capture(&mut self, prefix: &str) -> String {
        self.wait_for(prefix);
        let line = self.seen.last().expect("the line just seen");
        let start = line.find(prefix).expect("the prefix") + prefix.len();
        line[start..].trim().to_owned()
    }

    /// Kills the child and fails, with its output so far, if no line
    /// matches within 30 s.
    fn wait_until(&mut self, what: &str, matches: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = matches(&line);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => self.fail(&format!("printed no line matching `{what}`")),
            }
        }
    }

    /// Sends `signal` (`libc::SIGTERM` and so on) to the child.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, not yet waited for.
        #[allow(unsafe_code)]
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal})");
    }

    /// Waits for the exit (20 s at most) and returns its status and the
    /// whole output.
    pub fn exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                // The reader thread ends at EOF, once the pipe drains.
                let rest: Vec<String> = self.lines.iter().collect();
                self.seen.extend(rest);
                return (status, self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.fail("did not exit within 20 s")
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("{} {what}; output:\n{}", self.name, self.seen.join("\n"));
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
