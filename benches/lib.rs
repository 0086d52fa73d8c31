//! Benchmarks of `hosted` against raw tokio doing the same work in the same
//! run. Each is a `cargo bench` target that prints its figures and their
//! ratios; see `BENCHMARKS.md` for figures from a reference machine.
//!
//! This library holds what the benchmarks share: an allocator that counts
//! the bytes in use, for memory per item without the noise of RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::time::Duration;

/// The system allocator, counting the bytes currently allocated while
/// [`count_bytes`] has it count.
///
/// Off by default: a counter that every thread's allocations update is a
/// cache line the cores take from each other on every allocation, a cost
/// of the measurement that would fall on whichever contender allocates more
/// (on a machine whose cores are far apart, several times the allocation's
/// own). Benches count while they measure memory and not while they
/// measure time.
pub struct Counting;

static IN_USE: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Whether [`Counting`] counts from now on. Only the difference of two
/// [`bytes_in_use`] readings taken while it counts means anything.
pub fn count_bytes(on: bool) {
    COUNTING.store(on, Ordering::SeqCst);
}

fn counted(by: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        IN_USE.fetch_add(by, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter is only bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size() as isize);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        counted(-(layout.size() as isize));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted(new_size as isize - layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes allocated now, through [`Counting`].
pub fn bytes_in_use() -> isize {
    IN_USE.load(Ordering::Relaxed)
}

/// Lateness samples in a fixed set of atomic buckets: 1 µs wide up to
/// 10 ms, then 1 ms wide up to 10 s. Recording is one relaxed add, the same
/// cost for every contender, and needs no lock and no allocation.
pub struct Histogram {
    fine: Box<[AtomicU64]>,
    coarse: Box<[AtomicU64]>,
    over: AtomicU64,
}

const FINE: usize = 10_000;
const COARSE: usize = 10_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            fine: (0..FINE).map(|_| AtomicU64::new(0)).collect(),
            coarse: (0..COARSE).map(|_| AtomicU64::new(0)).collect(),
            over: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one sample; an early one (negative) counts as zero.
    pub fn record(&self, late: Duration) {
        let micros = late.as_micros();
        if micros < FINE as u128 {
            self.fine[micros as usize].fetch_add(1, Ordering::Relaxed);
        } else if micros / 1_000 < COARSE as u128 {
            self.coarse[(micros / 1_000) as usize].fetch_add(1, Ordering::Relaxed);
        } else {
            self.over.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets every sample.
    pub fn clear(&self) {
        for bucket in self.fine.iter().chain(self.coarse.iter()) {
            bucket.store(0, Ordering::Relaxed);
        }
        self.over.store(0, Ordering::Relaxed);
    }

    /// How many samples were recorded.
    pub fn count(&self) -> u64 {
        self.fine
            .iter()
            .chain(self.coarse.iter())
            .map(|b| b.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.over.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0.0 to 1.0) in µs, at the upper edge of its
    /// bucket; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.fine.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(i as u64 + 1);
            }
        }
        for (i, b) in self.coarse.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some((i as u64 + 1) * 1_000);
            }
        }
        Some(u64::MAX)
    }

    /// The largest sample in µs (its bucket's upper edge).
    pub fn max(&self) -> Option<u64> {
        self.quantile(1.0)
    }
}

/// User plus system CPU time of this process so far, from `/proc/self/stat`
/// (10 ms resolution).
pub fn cpu_time() -> Duration {
    cpu_time_of(std::path::Path::new("/proc/self"))
}

/// User plus system CPU time of the process whose `/proc` folder is `proc`.
pub fn cpu_time_of(proc: &std::path::Path) -> Duration {
    let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count from after it.
    let rest = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Duration::from_millis((ticks(11) + ticks(12)) * 1_000 / CLOCK_TICKS)
}

/// `sysconf(_SC_CLK_TCK)` on every Linux of the last two decades.
const CLOCK_TICKS: u64 = 100;

/// The peak resident set of this process, in bytes (`VmHWM`).
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1_024)
}

/// Runs this bench binary again with `args` and returns what it printed on
/// its last line, split into `key=value` pairs: each contender gets a fresh
/// process, so CPU time and peak RSS are its own.
pub fn child(args: &[&str]) -> std::collections::BTreeMap<String, String> {
    let exe = std::env::current_exe().expect("the bench's own path");
    let output = std::process::Command::new(exe)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run a child bench");
    assert!(
        output.status.success(),
        "child {args:?} failed: {}",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// An apalis-cron schedule whose next tick is the whole second `.0` seconds
/// ahead: `SecondsAhead(1)` ticks at every whole second, the ticks of
/// `* * * * * *` without the `cron` crate's parser (apalis-cron's ticks are
/// whole Unix seconds whatever the schedule); `SecondsAhead(86_400)` makes
/// a worker that only waits.
#[derive(Clone, Debug)]
pub struct SecondsAhead(pub u64);

impl apalis_cron::Schedule<chrono::Utc> for SecondsAhead {
    fn next_tick(&mut self, _: &chrono::Utc) -> Option<apalis_cron::Tick<chrono::Utc>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Some(apalis_cron::Tick::new(now.as_secs() + self.0))
    }
}

/// The number in environment variable `key`, else `default`.
pub fn env_count(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `values` (the upper one of an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `median (min to max)` of `values`, with `digits` decimals.
pub fn spread(values: &mut [f64], digits: usize) -> String {
    let m = median(values);
    format!(
        "{m:.digits$} ({:.digits$} to {:.digits$})",
        values[0],
        values[values.len() - 1]
    )
}

/// Microseconds as written by a child (`1234`) for a table: `1.23 ms`,
/// `456 µs`; text that is not a number is kept.
pub fn micros(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(us) if us.abs() >= 1_000.0 => format!("{:.2} ms", us / 1_000.0),
        Ok(us) => format!("{us:.0} µs"),
        Err(_) => text.to_owned(),
    }
}

/// How many cores this machine offers, for the tables' headings.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
