//! The service's metrics, rendered in the Prometheus text format at `/metrics`.
//!
//! Counters and gauges are atomics; latencies are histograms with fixed buckets (Prometheus
//! `_bucket`/`_sum`/`_count`), so recording is a few atomic adds on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Everything the service counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub appends: Counter,
    pub append_records: Counter,
    pub append_bytes: Counter,
    pub append_errors: Counter,
    pub append_latency: Histogram,
    pub reads: Counter,
    pub read_records: Counter,
    /// Bytes read, by tier (only bookies so far).
    pub read_bytes_bookies: Counter,
    pub read_errors: Counter,
    pub read_latency: Histogram,
    pub retained_segments: Counter,
    pub offloaded_segments: Counter,
    /// Object bytes written by offloads.
    pub offloaded_bytes: Counter,
    pub ownership_changes: Counter,
    pub redirects: Counter,
    pub connections: Counter,
    pub admin_requests: Counter,
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

/// Point-in-time values the renderer asks for.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub owned_streams: u64,
    /// (bookie id, state, disk used, disk total).
    pub bookies: Vec<(String, String, u64, u64)>,
}

impl Metrics {
    pub fn render(&self, g: &Gauges) -> String {
        let mut o = String::with_capacity(4096);
        counter(
            &mut o,
            "dlog_appends_total",
            "Append requests answered.",
            self.appends.get(),
        );
        counter(
            &mut o,
            "dlog_append_records_total",
            "Records appended.",
            self.append_records.get(),
        );
        counter(
            &mut o,
            "dlog_append_bytes_total",
            "Record-set bytes appended.",
            self.append_bytes.get(),
        );
        counter(
            &mut o,
            "dlog_append_errors_total",
            "Append requests that failed.",
            self.append_errors.get(),
        );
        self.append_latency.render(
            &mut o,
            "dlog_append_latency_seconds",
            "From an append request's arrival to its durable acknowledgement.",
        );
        counter(
            &mut o,
            "dlog_reads_total",
            "Read requests answered.",
            self.reads.get(),
        );
        counter(
            &mut o,
            "dlog_read_records_total",
            "Records returned by reads.",
            self.read_records.get(),
        );
        let _ = writeln!(
            o,
            "# HELP dlog_read_bytes_total Bytes returned by reads, by tier.\n\
             # TYPE dlog_read_bytes_total counter\n\
             dlog_read_bytes_total{{tier=\"bookies\"}} {}\n\
             dlog_read_bytes_total{{tier=\"objects\"}} 0",
            self.read_bytes_bookies.get()
        );
        counter(
            &mut o,
            "dlog_read_errors_total",
            "Read requests that failed.",
            self.read_errors.get(),
        );
        self.read_latency.render(
            &mut o,
            "dlog_read_latency_seconds",
            "From a read request's arrival to its answer (long-poll waits included).",
        );
        counter(
            &mut o,
            "dlog_retention_deleted_segments_total",
            "Segments deleted by retention.",
            self.retained_segments.get(),
        );
        counter(
            &mut o,
            "dlog_offloaded_segments_total",
            "Segments this node offloaded to the object tier.",
            self.offloaded_segments.get(),
        );
        counter(
            &mut o,
            "dlog_offloaded_bytes_total",
            "Object bytes this node wrote by offloading segments.",
            self.offloaded_bytes.get(),
        );
        counter(
            &mut o,
            "dlog_ownership_changes_total",
            "Streams this node took ownership of.",
            self.ownership_changes.get(),
        );
        counter(
            &mut o,
            "dlog_redirects_total",
            "Requests answered with the stream's owner elsewhere.",
            self.redirects.get(),
        );
        counter(
            &mut o,
            "dlog_client_connections_total",
            "Client connections accepted.",
            self.connections.get(),
        );
        counter(
            &mut o,
            "dlog_admin_requests_total",
            "Admin requests (protocol and HTTP).",
            self.admin_requests.get(),
        );
        gauge(
            &mut o,
            "dlog_owned_streams",
            "Streams this node writes.",
            g.owned_streams,
        );
        let _ = writeln!(
            o,
            "# HELP dlog_bookie_disk_used_bytes Disk used by each registered bookie.\n\
             # TYPE dlog_bookie_disk_used_bytes gauge"
        );
        for (id, _, used, _) in &g.bookies {
            let _ = writeln!(o, "dlog_bookie_disk_used_bytes{{bookie=\"{id}\"}} {used}");
        }
        let _ = writeln!(
            o,
            "# HELP dlog_bookie_disk_total_bytes Disk size of each registered bookie.\n\
             # TYPE dlog_bookie_disk_total_bytes gauge"
        );
        for (id, _, _, total) in &g.bookies {
            let _ = writeln!(o, "dlog_bookie_disk_total_bytes{{bookie=\"{id}\"}} {total}");
        }
        let _ = writeln!(
            o,
            "# HELP dlog_bookie_up Registered bookies by state.\n# TYPE dlog_bookie_up gauge"
        );
        for (id, state, _, _) in &g.bookies {
            let _ = writeln!(o, "dlog_bookie_up{{bookie=\"{id}\",state=\"{state}\"}} 1");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.appends.add(3);
        m.append_latency.observe(Duration::from_micros(700));
        m.append_latency.observe(Duration::from_secs(20));
        let text = m.render(&Gauges {
            owned_streams: 2,
            bookies: vec![("b1".into(), "writable".into(), 10, 100)],
        });
        assert!(text.contains("dlog_appends_total 3"));
        assert!(text.contains("dlog_append_latency_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(text.contains("dlog_append_latency_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("dlog_append_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("dlog_append_latency_seconds_count 2"));
        assert!(text.contains("dlog_owned_streams 2"));
        assert!(text.contains("dlog_bookie_disk_used_bytes{bookie=\"b1\"} 10"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
