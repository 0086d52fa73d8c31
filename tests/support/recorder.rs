//! The `metrics` facade read back: one debugging recorder per test binary,
//! installed on first use, and the values it holds by name and labels.

use std::sync::LazyLock;

use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// The process's one recorder; tests take it with [`exclusive`].
pub static RECORDER: LazyLock<Snapshotter> = LazyLock::new(|| {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other recorder in this test binary");
    snapshotter
});

/// A metric as read back: name, labels (sorted), unit, value.
pub type Recorded = (String, Vec<(String, String)>, Option<Unit>, DebugValue);

/// Every metric named `name` with exactly `labels`: its unit and value.
pub fn metric<'a>(
    snapshot: &'a [Recorded],
    name: &str,
    labels: &[(&str, &str)],
) -> (Option<Unit>, &'a DebugValue) {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    snapshot
        .iter()
        .find(|(n, l, _, _)| n == name && *l == want)
        .map(|(_, _, unit, value)| (*unit, value))
        .unwrap_or_else(|| panic!("no {name} {labels:?} among {snapshot:#?}"))
}

/// What the recorder holds now, and takes: see [`exclusive`].
pub fn snapshot() -> Vec<Recorded> {
    RECORDER
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, unit, value)
        })
        .collect()
}

/// The recorder, for one test at a time: a read takes what it reads
/// (counters and gauges read as zero until written again, histograms lose
/// their samples), so two tests of one binary reading at once would take
/// each other's values. Hold the guard for the whole test.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&RECORDER);
    guard
}

pub fn counter(value: &DebugValue) -> u64 {
    match value {
        DebugValue::Counter(n) => *n,
        other => panic!("not a counter: {other:?}"),
    }
}

pub fn gauge(value: &DebugValue) -> f64 {
    match value {
        DebugValue::Gauge(v) => v.0,
        other => panic!("not a gauge: {other:?}"),
    }
}

pub fn histogram(value: &DebugValue) -> Vec<f64> {
    match value {
        DebugValue::Histogram(samples) => samples.iter().map(|v| v.0).collect(),
        other => panic!("not a histogram: {other:?}"),
    }
}
