//! The load flags, latency recording and the report every bench prints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, encode_record_set};
use dlog_api::{Compression, Record};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use serde::Serialize;

/// Load shape, shared by every bench.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Bytes of payload per record.
    #[arg(long, default_value_t = 1024)]
    pub entry_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Cap on the offered load, in requests per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Print a final machine-readable JSON line.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.entry_size > 0, "--entry-size must be at least 1");
        anyhow::ensure!(
            (1..=1_000_000).contains(&self.inflight),
            "--inflight must be between 1 and 1000000"
        );
        anyhow::ensure!(
            self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 86_400.0,
            "--seconds must be in (0, 86400]"
        );
        if let Some(r) = self.rate {
            anyhow::ensure!(r.is_finite() && r > 0.0, "--rate must be a positive number");
        }
        Ok(())
    }
}

/// Collects latencies and counts from many tasks.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
}

#[derive(Debug)]
struct RecorderInner {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    bytes: u64,
    first_error: Option<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Self {
            inner: Arc::new(Mutex::new(RecorderInner {
                hist,
                ok: 0,
                errors: 0,
                bytes: 0,
                first_error: None,
            })),
        }
    }

    pub fn ok(&self, latency: Duration, payload_bytes: u64) {
        let mut i = self.inner.lock();
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = i.hist.record(us.min(3_600_000_000));
        i.ok += 1;
        i.bytes += payload_bytes;
    }

    pub fn error(&self, e: impl std::fmt::Display) {
        let mut i = self.inner.lock();
        i.errors += 1;
        if i.first_error.is_none() {
            i.first_error = Some(e.to_string());
        }
    }

    pub fn completed(&self) -> (u64, u64) {
        let i = self.inner.lock();
        (i.ok, i.bytes)
    }

    pub fn report(&self, bench: &str, load: &LoadArgs, elapsed: Duration) -> Report {
        let i = self.inner.lock();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let q = |p: f64| i.hist.value_at_quantile(p) as f64 / 1000.0;
        Report {
            bench: bench.to_string(),
            entry_size: load.entry_size,
            inflight: load.inflight,
            rate: load.rate,
            seconds: secs,
            records: i.ok,
            errors: i.errors,
            first_error: i.first_error.clone(),
            records_per_s: i.ok as f64 / secs,
            mb_per_s: i.bytes as f64 / secs / 1e6,
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: i.hist.max() as f64 / 1000.0,
            mean_ms: i.hist.mean() / 1000.0,
        }
    }
}

/// What every bench prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bench: String,
    pub entry_size: usize,
    pub inflight: usize,
    pub rate: Option<f64>,
    pub seconds: f64,
    pub records: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Report {
    pub fn print(&self, json: bool) {
        let rate = self
            .rate
            .map_or_else(|| "unlimited".to_string(), |r| format!("{r:.0}/s"));
        println!(
            "{}: {} records of {} B in {:.1} s (inflight {}, offered rate {})",
            self.bench, self.records, self.entry_size, self.seconds, self.inflight, rate
        );
        println!(
            "  throughput  {:.0} records/s  {:.1} MB/s",
            self.records_per_s, self.mb_per_s
        );
        println!(
            "  latency ms  p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}  mean {:.3}",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms
        );
        if self.errors > 0 {
            println!(
                "  errors      {} (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        if json {
            match serde_json::to_string(self) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: encode report: {e}"),
            }
        }
    }
}

/// The progress bar of a run of `seconds` (ticks of 100 ms).
pub fn progress_bar(seconds: f64) -> ProgressBar {
    let bar = ProgressBar::new((seconds * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Updates the bar with the running rates, at most every 100 ms.
pub fn tick(bar: &ProgressBar, rec: &Recorder, start: Instant, last: &mut Instant) {
    if last.elapsed() < Duration::from_millis(100) {
        return;
    }
    *last = Instant::now();
    let (ok, bytes) = rec.completed();
    let secs = start.elapsed().as_secs_f64();
    bar.set_position((secs * 10.0) as u64);
    bar.set_message(format!(
        "{:.0} records/s {:.1} MB/s",
        ok as f64 / secs,
        bytes as f64 / secs / 1e6
    ));
}

/// An entry payload as the log layer will send it: a record set holding one record of
/// `size` random (incompressible) bytes.
pub fn one_record_set(size: usize) -> anyhow::Result<Bytes> {
    let limits = RecordSetLimits {
        max_payload: size,
        ..Default::default()
    };
    let payload = Bytes::from((0..size).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
    Ok(encode_record_set(
        &[Record::new(payload)],
        Compression::None,
        &limits,
    )?)
}

/// Paces requests at `rate` per second; `None` means as fast as permits allow.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    interval: Option<Duration>,
    n: u64,
}

impl Pacer {
    pub fn new(rate: Option<f64>) -> Self {
        Self {
            start: Instant::now(),
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            n: 0,
        }
    }

    /// When the next request is due (now, without a rate).
    pub fn next_due(&mut self) -> Instant {
        let Some(iv) = self.interval else {
            return Instant::now();
        };
        let due = self.start + iv.mul_f64(self.n as f64);
        self.n += 1;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_contract_fields() {
        let r = Recorder::new();
        for ms in 1..=100u64 {
            r.ok(Duration::from_millis(ms), 1000);
        }
        let load = LoadArgs {
            entry_size: 1000,
            inflight: 1,
            seconds: 1.0,
            rate: None,
            json: true,
        };
        let rep = r.report("t", &load, Duration::from_secs(1));
        assert_eq!(rep.records, 100);
        assert!((rep.mb_per_s - 0.1).abs() < 1e-9);
        assert!((rep.p50_ms - 50.0).abs() < 0.5, "{}", rep.p50_ms);
        assert!((rep.p99_ms - 99.0).abs() < 0.5, "{}", rep.p99_ms);
        let v: serde_json::Value = serde_json::to_value(&rep).unwrap();
        for k in ["mb_per_s", "records_per_s", "p50_ms", "p99_ms", "p999_ms"] {
            assert!(v.get(k).is_some_and(|x| x.is_number()), "{k}");
        }
    }

    #[test]
    fn bad_load_flags_are_refused() {
        let ok = LoadArgs {
            entry_size: 1,
            inflight: 1,
            seconds: 1.0,
            rate: Some(10.0),
            json: false,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            LoadArgs {
                entry_size: 0,
                ..ok.clone()
            },
            LoadArgs {
                inflight: 0,
                ..ok.clone()
            },
            LoadArgs {
                seconds: -1.0,
                ..ok.clone()
            },
            LoadArgs {
                seconds: f64::NAN,
                ..ok.clone()
            },
            LoadArgs {
                rate: Some(0.0),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
