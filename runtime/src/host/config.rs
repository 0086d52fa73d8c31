//! Schedules from configuration: override a job's schedule, options and
//! enabled flag by name at build time, by hand or from any serde source.

use std::collections::BTreeMap;
use std::time::Duration;

use hosted_spec::{parse_cron, parse_millis, parse_zone};
use serde::Deserialize;

use crate::base::kind::Overlap;
use crate::model::registry::{Candidate, ScheduleSpec};

/// Settings of a host and its jobs, as a configuration file holds them.
/// Derives `Deserialize`, so TOML, JSON, YAML or environment variables
/// (through a config crate) all work. Unknown keys are rejected when
/// deserializing; invalid values are `build()` errors naming the job and
/// the key.
///
/// # Examples
///
/// ```
/// use hosted::{Host, HostConfig};
///
/// #[hosted::every("30s")]
/// async fn grace_period() {}
///
/// let config: HostConfig = toml::from_str(r#"
///     shutdown_timeout = "10s"
///
///     [jobs.grace_period]
///     every = "1m"
///     jitter = "5s"
/// "#).unwrap();
/// let host = Host::builder().only_jobs(["grace_period"]).config(config).build().unwrap();
/// # drop(host);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HostConfig {
    /// Overrides [`HostBuilder::shutdown_timeout`](crate::HostBuilder::shutdown_timeout), e.g. `"10s"`.
    pub shutdown_timeout: Option<String>,
    /// Overrides [`HostBuilder::startup_timeout`](crate::HostBuilder::startup_timeout).
    pub startup_timeout: Option<String>,
    /// Settings per job, by job name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobConfig>,
}

/// Settings of one job. Each field left out keeps what the job's attribute
/// (or [`Job`](crate::Job)) says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JobConfig {
    /// `false` keeps the job listed but never runs it.
    pub enabled: Option<bool>,
    /// A period, e.g. `"30s"`: makes the job an `every` job.
    pub every: Option<String>,
    /// A cron line: makes the job a cron job.
    pub cron: Option<String>,
    /// The cron job's time zone.
    pub tz: Option<String>,
    /// The `every` job's initial delay.
    pub initial_delay: Option<String>,
    /// The `every` job's jitter.
    pub jitter: Option<String>,
    /// `"skip"` or `"allow"`.
    pub overlap: Option<String>,
}

/// Typed setters, for settings made in code (the fields take the text a
/// configuration file holds): `job.every(Duration::from_secs(5))` rather
/// than `job.every = Some("5s".into())`. Each returns the config, so they
/// chain.
///
/// ```
/// use std::time::Duration;
/// use hosted::{Host, Overlap};
///
/// #[hosted::every("30s")]
/// async fn grace_period() {}
///
/// let host = Host::builder()
///     .only_jobs(["grace_period"])
///     .configure("grace_period", |job| {
///         job.every(Duration::from_secs(300))
///             .jitter(Duration::from_secs(10))
///             .overlap(Overlap::Allow);
///     })
///     .build()
///     .unwrap();
/// # drop(host);
/// ```
impl JobConfig {
    /// Sets [`enabled`](Self::enabled).
    pub fn enabled(&mut self, enabled: bool) -> &mut Self {
        self.enabled = Some(enabled);
        self
    }

    /// Makes the job an `every` job with this period. The schedule grammar
    /// counts in milliseconds: a period with a fraction of one is an error
    /// from `build()`.
    pub fn every(&mut self, period: Duration) -> &mut Self {
        self.every = Some(grammar(period));
        self
    }

    /// Makes the job a cron job with this line.
    pub fn cron(&mut self, line: impl Into<String>) -> &mut Self {
        self.cron = Some(line.into());
        self
    }

    /// Sets the cron job's time zone (an IANA name).
    pub fn tz(&mut self, zone: impl Into<String>) -> &mut Self {
        self.tz = Some(zone.into());
        self
    }

    /// Sets the `every` job's initial delay (whole milliseconds).
    pub fn initial_delay(&mut self, delay: Duration) -> &mut Self {
        self.initial_delay = Some(grammar(delay));
        self
    }

    /// Sets the `every` job's jitter (whole milliseconds).
    pub fn jitter(&mut self, jitter: Duration) -> &mut Self {
        self.jitter = Some(grammar(jitter));
        self
    }

    /// Sets the overlap policy.
    pub fn overlap(&mut self, overlap: crate::Overlap) -> &mut Self {
        self.overlap = Some(
            match overlap {
                crate::Overlap::Skip => "skip",
                crate::Overlap::Allow => "allow",
            }
            .to_owned(),
        );
        self
    }

    /// Takes every field `other` sets.
    fn merge(&mut self, other: JobConfig) {
        let JobConfig {
            enabled,
            every,
            cron,
            tz,
            initial_delay,
            jitter,
            overlap,
        } = other;
        self.enabled = enabled.or(self.enabled.take());
        self.every = every.or(self.every.take());
        self.cron = cron.or(self.cron.take());
        self.tz = tz.or(self.tz.take());
        self.initial_delay = initial_delay.or(self.initial_delay.take());
        self.jitter = jitter.or(self.jitter.take());
        self.overlap = overlap.or(self.overlap.take());
    }
}

/// The overrides a builder collected.
#[derive(Default)]
pub(crate) struct Overrides {
    pub(crate) shutdown_timeout: Option<String>,
    pub(crate) startup_timeout: Option<String>,
    pub(crate) jobs: BTreeMap<String, JobConfig>,
}

impl Overrides {
    pub(crate) fn add(&mut self, config: HostConfig) {
        let HostConfig {
            shutdown_timeout,
            startup_timeout,
            jobs,
        } = config;
        self.shutdown_timeout = shutdown_timeout.or(self.shutdown_timeout.take());
        self.startup_timeout = startup_timeout.or(self.startup_timeout.take());
        for (name, job) in jobs {
            self.jobs.entry(name).or_default().merge(job);
        }
    }

    pub(crate) fn job(&mut self, name: String) -> &mut JobConfig {
        self.jobs.entry(name).or_default()
    }
}

/// Parses a duration in the syntax of the attributes and of configuration:
/// integers with units `ms`, `s`, `m`, `h` and `d`, as in `"1m30s"`. For
/// an application's own settings, so that they read like the host's.
///
/// # Errors
///
/// A malformed duration; the message names the valid units.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(hosted::parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(hosted::parse_duration("90 seconds").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, ParseDurationError> {
    parse_millis(text)
        .map(Duration::from_millis)
        .map_err(|error| ParseDurationError(error.into()))
}

/// A malformed duration; see [`parse_duration`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDurationError(String);

impl std::fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDurationError {}

/// A bad value: the key and what is wrong with it.
pub(crate) type Invalid = (&'static str, String);

/// A duration setting, e.g. `shutdown_timeout`.
pub(crate) fn duration(key: &'static str, text: &str) -> Result<Duration, Invalid> {
    parse_duration(text).map_err(|error| (key, error.0))
}

/// Applies `config` to `job`, returning every invalid key.
pub(crate) fn apply(job: &mut Candidate, config: JobConfig) -> Vec<Invalid> {
    let mut invalid = Vec::new();
    let JobConfig {
        enabled,
        every,
        cron,
        tz,
        initial_delay,
        jitter,
        overlap,
    } = config;
    if let Some(enabled) = enabled {
        job.enabled = enabled;
    }
    let is_service = matches!(job.schedule, ScheduleSpec::Service);
    let schedule_keys = [
        ("every", every.is_some()),
        ("cron", cron.is_some()),
        ("tz", tz.is_some()),
        ("initial_delay", initial_delay.is_some()),
        ("jitter", jitter.is_some()),
        ("overlap", overlap.is_some()),
    ];
    if is_service {
        for (key, set) in schedule_keys {
            if set {
                invalid.push((
                    key,
                    "the job is a service: it has no schedule; only `enabled` applies".to_owned(),
                ));
            }
        }
        return invalid;
    }
    match (every, cron) {
        (Some(_), Some(_)) => {
            invalid.push(("every", "give `every` or `cron`, not both".to_owned()));
        }
        (Some(text), None) => match parse_millis(&text) {
            Ok(0) => invalid.push(("every", "the period must be greater than zero".to_owned())),
            Ok(ms) => {
                let (initial_delay, jitter) = match &job.schedule {
                    ScheduleSpec::Every {
                        initial_delay,
                        jitter,
                        ..
                    } => (*initial_delay, *jitter),
                    _ => (Duration::ZERO, Duration::ZERO),
                };
                job.schedule = ScheduleSpec::Every {
                    source: Some(text.into_boxed_str()),
                    period: Duration::from_millis(ms),
                    initial_delay,
                    jitter,
                };
            }
            Err(message) => invalid.push(("every", message.into())),
        },
        (None, Some(line)) => match parse_cron(&line) {
            Ok(_) => {
                let zone = match &job.schedule {
                    ScheduleSpec::Cron { zone, .. } => zone.clone(),
                    _ => None,
                };
                job.schedule = ScheduleSpec::Cron { line, zone };
            }
            Err(message) => invalid.push(("cron", message.into())),
        },
        (None, None) => {}
    }
    if let Some(name) = tz {
        match (&mut job.schedule, parse_zone(&name)) {
            (ScheduleSpec::Cron { zone, .. }, Ok(_)) => *zone = Some(name),
            (ScheduleSpec::Cron { .. }, Err(message)) => invalid.push(("tz", message.into())),
            _ => invalid.push(("tz", "`tz` applies to cron jobs".to_owned())),
        }
    }
    for (key, value) in [("initial_delay", initial_delay), ("jitter", jitter)] {
        let Some(text) = value else { continue };
        match (&mut job.schedule, parse_millis(&text)) {
            (ScheduleSpec::Every { initial_delay, .. }, Ok(ms)) if key == "initial_delay" => {
                *initial_delay = Duration::from_millis(ms);
            }
            (ScheduleSpec::Every { jitter, .. }, Ok(ms)) => *jitter = Duration::from_millis(ms),
            (ScheduleSpec::Every { .. }, Err(message)) => invalid.push((key, message.into())),
            _ => invalid.push((key, format!("`{key}` applies to `every` jobs"))),
        }
    }
    match overlap.as_deref() {
        None => {}
        Some("skip") => job.overlap = Overlap::Skip,
        Some("allow") => job.overlap = Overlap::Allow,
        Some(other) => invalid.push((
            "overlap",
            format!("unknown overlap policy `{other}`; use `\"skip\"` or `\"allow\"`"),
        )),
    }
    invalid
}

/// `duration` in the schedule grammar: whole milliseconds, else its
/// `Debug` text (`1.5ms`), which the grammar rejects with its reason.
fn grammar(duration: Duration) -> String {
    if duration.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{duration:?}")
    }
}
