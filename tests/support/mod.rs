//! Integration tests of `hosted`, one file per behaviour, grouped by area
//! in the folders beside this one: `schedule/`, `lifecycle/`, `jobs/`,
//! `observe/`, `queue/`, `web/`, and `crate/` (the crate as a whole: its
//! metadata, linking, drivers and compile errors). The tests of
//! `hosted-postgres` are in `postgres/tests/`, and use this support too.
//!
//! What several of them share: [`Probe`], a lifecycle service that records
//! every step and can be told to fail, panic, hang or take time at any
//! step; [`process::Process`], a child process under test; [`logs`], the
//! lines a host printed; [`recorder`], the `metrics` facade read back; and
//! [`wait_until`], a wait for a condition within a deadline.

// Test support, published nowhere: its items are documented where it helps.
#![allow(missing_docs)]

pub mod http;
pub mod logs;
pub mod process;
pub mod recorder;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hosted::{CancellationToken, HostedService, Lifetime, Phase};

/// The steps a set of probes went through, in order, each with the
/// lifetime's flags when it began.
#[derive(Clone, Default)]
pub struct Journal {
    entries: Arc<Mutex<Vec<Entry>>>,
    lifetime: Arc<OnceLock<Lifetime>>,
}

/// One step: `"name:phase"`, and the lifetime's `(started, stopping,
/// stopped)` flags when it began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub step: String,
    pub flags: (bool, bool, bool),
}

impl Journal {
    /// Lets later entries record the host's lifetime flags.
    pub fn watch(&self, lifetime: Lifetime) {
        let _ = self.lifetime.set(lifetime);
    }

    pub fn record(&self, step: String) {
        let flags = self.lifetime.get().map_or((false, false, false), |l| {
            (l.is_started(), l.is_stopping(), l.is_stopped())
        });
        self.entries.lock().unwrap().push(Entry { step, flags });
    }

    /// The steps, without flags.
    pub fn steps(&self) -> Vec<String> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.step.clone())
            .collect()
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }
}

/// What a probe does at one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Fail,
    Panic,
    /// Never returns, whatever the token says.
    Hang,
    /// Returns once the step's token fires.
    AwaitToken,
    Take(Duration),
}

/// A lifecycle service that records its steps in a [`Journal`].
pub struct Probe {
    name: &'static str,
    journal: Journal,
    acts: Vec<(Phase, Act)>,
}

impl Probe {
    pub fn new(name: &'static str, journal: &Journal) -> Probe {
        Probe {
            name,
            journal: journal.clone(),
            acts: Vec::new(),
        }
    }

    /// Makes the probe `act` at `phase`.
    pub fn at(mut self, phase: Phase, act: Act) -> Probe {
        self.acts.push((phase, act));
        self
    }

    async fn step(&mut self, phase: Phase, token: CancellationToken) -> Result<(), String> {
        self.journal.record(format!("{}:{phase}", self.name));
        let act = self.acts.iter().find(|(p, _)| *p == phase).map(|(_, a)| *a);
        match act {
            None => Ok(()),
            Some(Act::Fail) => Err(format!("{} refuses to {phase}", self.name)),
            Some(Act::Panic) => panic!("{} panics at {phase}", self.name),
            Some(Act::Hang) => std::future::pending().await,
            Some(Act::AwaitToken) => {
                token.cancelled().await;
                Ok(())
            }
            Some(Act::Take(duration)) => {
                tokio::time::sleep(duration).await;
                Ok(())
            }
        }
    }
}

impl HostedService for Probe {
    type Error = String;

    fn name(&self) -> std::borrow::Cow<'static, str> {
        self.name.into()
    }

    async fn starting(&mut self, token: CancellationToken) -> Result<(), String> {
        self.step(Phase::Starting, token).await
    }

    async fn start(&mut self, token: CancellationToken) -> Result<(), String> {
        self.step(Phase::Start, token).await
    }

    async fn started(&mut self, token: CancellationToken) -> Result<(), String> {
        self.step(Phase::Started, token).await
    }

    async fn stopping(&mut self, token: CancellationToken) -> Result<(), String> {
        self.step(Phase::Stopping, token).await
    }

    async fn stop(&mut self, token: CancellationToken) -> Result<(), String> {
        self.step(Phase::Stop, token).await
    }

    async fn stopped(&mut self, token: CancellationToken) -> Result<(), String> {
        self.step(Phase::Stopped, token).await
    }
}

/// Waits until `condition` holds, checking every few milliseconds, and
/// fails the test with `what()` if it does not within `within`. Use it
/// instead of sleeping a fixed time and then counting: it returns as soon
/// as the condition holds, and a loaded machine gets the whole deadline.
pub async fn wait_until(
    within: Duration,
    mut condition: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) {
    wait_for(within, || std::future::ready(condition()), what).await;
}

/// [`wait_until`] for a condition that has to wait itself (a query).
pub async fn wait_for<F: Future<Output = bool>>(
    within: Duration,
    mut condition: impl FnMut() -> F,
    what: impl FnOnce() -> String,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
