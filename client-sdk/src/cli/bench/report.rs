//! What the benchmarks share: latency histograms, counters, pacing and progress bars.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Latencies in microseconds, from 1 µs to 1 h, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl Latencies {
    /// Records one latency (clamped to the histogram's range).
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let _ = self.hist.record(us.clamp(1, 3_600_000_000));
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest latency, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    /// The mean latency, in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.hist.mean() / 1000.0
    }
}

/// Completed and failed operations, shared between the tasks of a benchmark.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    inner: Arc<Mutex<TallyInner>>,
}

/// The counts of a [`Tally`].
#[derive(Debug, Default, Clone)]
pub struct TallyInner {
    /// Latencies of the completed operations.
    pub latencies: Latencies,
    /// Completed operations.
    pub ok: u64,
    /// Payload bytes of the completed operations.
    pub bytes: u64,
    /// Failed operations.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl Tally {
    fn lock(&self) -> MutexGuard<'_, TallyInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a completed operation.
    pub fn ok(&self, latency: Duration, bytes: u64) {
        let mut t = self.lock();
        t.latencies.record(latency);
        t.ok += 1;
        t.bytes += bytes;
    }

    /// Counts a failed operation.
    pub fn error(&self, e: impl std::fmt::Display) {
        let mut t = self.lock();
        t.errors += 1;
        if t.first_error.is_none() {
            t.first_error = Some(e.to_string());
        }
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> TallyInner {
        self.lock().clone()
    }

    /// (completed, bytes, errors) so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let t = self.lock();
        (t.ok, t.bytes, t.errors)
    }
}

/// Paces operations at a fixed rate; without one, as fast as the caller goes.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    interval: Option<Duration>,
    n: u64,
}

impl Pacer {
    /// A pacer at `rate` operations per second.
    pub fn new(rate: Option<f64>) -> Self {
        Self {
            start: Instant::now(),
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            n: 0,
        }
    }

    /// Waits until the next operation is due.
    pub async fn wait(&mut self) {
        let Some(iv) = self.interval else {
            return;
        };
        let due = self.start + iv.mul_f64(self.n as f64);
        self.n += 1;
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Checks a `--rate`.
pub fn check_rate(rate: Option<f64>) -> anyhow::Result<()> {
    if let Some(r) = rate {
        anyhow::ensure!(
            r.is_finite() && r > 0.0 && r <= 10_000_000.0,
            "--rate must be a positive number of records per second"
        );
    }
    Ok(())
}

/// A progress bar of `len` units on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template =
        format!("{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} {{msg}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Incompressible payloads: successive slices of a pool of random bytes, so that records
/// differ and neither the writer's batches nor the Parquet objects compress (one payload
/// repeated would shrink 100 MB of records to a few MB of objects and flatter every figure
/// past the writer).
#[derive(Debug)]
pub struct Payloads {
    pool: Bytes,
    size: usize,
    at: usize,
    pass: usize,
}

impl Payloads {
    /// Bytes of random data the payloads are cut from (larger than any compression window).
    const POOL: usize = 64 << 20;

    /// Payloads of `size` bytes.
    pub fn new(size: usize) -> Payloads {
        let mut pool = vec![0u8; Self::POOL.max(2 * size)];
        fastrand::Rng::new().fill(&mut pool);
        Payloads {
            pool: Bytes::from(pool),
            size,
            at: 0,
            pass: 0,
        }
    }

    /// The next payload (no copy: a slice of the pool).
    pub fn next_payload(&mut self) -> Bytes {
        if self.at + self.size > self.pool.len() {
            // Start again one byte further along, so that a second pass repeats no payload
            // of the first.
            self.pass += 1;
            self.at = self.pass % self.size.max(1);
        }
        let p = self.pool.slice(self.at..self.at + self.size);
        self.at += self.size;
        p
    }
}

/// MB/s (10⁶ bytes) of `bytes` over `elapsed`.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// Prints a report as one JSON line.
pub fn print_json_line<T: serde::Serialize>(report: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string(report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Payloads;

    #[test]
    fn payloads_do_not_repeat_across_passes_of_the_pool() {
        let mut p = Payloads::new(4000);
        let n = 2 * (Payloads::POOL / 4000) + 10;
        let mut seen = std::collections::HashSet::new();
        for i in 0..n {
            let b = p.next_payload();
            assert_eq!(b.len(), 4000);
            assert!(seen.insert(b), "payload {i} repeats an earlier one");
        }
    }
}
