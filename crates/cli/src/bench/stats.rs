//! Turning counters and histograms into the final report: a two-column
//! table for people, one JSON object for machines (`--json`).
//!
//! Units: MB is 10^6 bytes (as fio and iperf3 print them); latencies are
//! recorded in microseconds and shown in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::procfs::Usage;

/// The largest latency a histogram records, in microseconds (one hour);
/// larger values are clamped to it.
const LATENCY_MAX_MICROS: u64 = 3_600_000_000;

/// An empty latency histogram in microseconds, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3) {
        Ok(histogram) => histogram,
        Err(error) => unreachable!("constant histogram bounds are valid: {error}"),
    }
}

/// How much went through and in how long.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Records delivered (produce) or received (consume).
    pub records: u64,
    /// Key + value bytes of those records.
    pub bytes: u64,
    /// From the first send (or the assignment) to the last delivery.
    pub elapsed: Duration,
}

impl Throughput {
    pub fn records_per_second(&self) -> f64 {
        per_second(self.records as f64, self.elapsed)
    }

    pub fn megabytes_per_second(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.elapsed)
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

/// The percentiles a report shows, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    /// None when nothing was recorded.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        Some(Latency {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        })
    }
}

/// Microseconds as milliseconds with three significant digits or more.
pub fn format_millis(micros: u64) -> String {
    let millis = micros as f64 / 1000.0;
    if millis < 10.0 {
        format!("{millis:.2} ms")
    } else if millis < 100.0 {
        format!("{millis:.1} ms")
    } else {
        format!("{millis:.0} ms")
    }
}

/// A whole number with thousands separators: 1234567 → 1,234,567.
pub fn format_count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Bytes in the largest binary unit that keeps the number ≥ 1.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// Rounds to 3 decimals for JSON, so machines get stable, short numbers.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The final report of one bench run.
#[derive(Debug)]
pub struct Report {
    /// (label, value) rows of the table, in order.
    rows: Vec<(String, String)>,
    /// The same facts for `--json`, with stable keys and plain numbers.
    json: Map<String, Value>,
}

impl Report {
    pub fn new(mode: &str) -> Report {
        let mut json = Map::new();
        json.insert("mode".to_string(), json!(mode));
        Report {
            rows: vec![("mode".to_string(), mode.to_string())],
            json,
        }
    }

    /// One fact: a row labelled `label`, and `key` in the JSON object.
    pub fn add(&mut self, label: &str, text: impl Into<String>, key: &str, value: Value) {
        self.rows.push((label.to_string(), text.into()));
        self.json.insert(key.to_string(), value);
    }

    /// Only in the JSON object (settings the table would drown in).
    pub fn add_json(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_string(), value);
    }

    pub fn throughput(&mut self, throughput: &Throughput) {
        self.add(
            "records",
            format_count(throughput.records),
            "records",
            json!(throughput.records),
        );
        self.add(
            "bytes",
            format_bytes(throughput.bytes),
            "bytes",
            json!(throughput.bytes),
        );
        self.add(
            "elapsed",
            format!("{:.2} s", throughput.elapsed.as_secs_f64()),
            "elapsed_seconds",
            json!(round3(throughput.elapsed.as_secs_f64())),
        );
        let records_per_second = throughput.records_per_second();
        self.add(
            "records/s",
            format_count(records_per_second.round() as u64),
            "records_per_second",
            json!(round3(records_per_second)),
        );
        let megabytes_per_second = throughput.megabytes_per_second();
        self.add(
            "MB/s",
            format!("{megabytes_per_second:.1}"),
            "megabytes_per_second",
            json!(round3(megabytes_per_second)),
        );
    }

    /// Latency rows `<label> p50` …, and `<key>` in JSON with microseconds.
    pub fn latency(&mut self, label: &str, key: &str, latency: Option<Latency>) {
        let Some(latency) = latency else {
            self.add(label, "none recorded", key, Value::Null);
            return;
        };
        let quantiles = [
            ("p50", latency.p50),
            ("p99", latency.p99),
            ("p99.9", latency.p999),
            ("max", latency.max),
        ];
        for (name, micros) in quantiles {
            self.rows
                .push((format!("{label} {name}"), format_millis(micros)));
        }
        self.json.insert(
            key.to_string(),
            json!({
                "count": latency.count,
                "p50_us": latency.p50,
                "p99_us": latency.p99,
                "p999_us": latency.p999,
                "max_us": latency.max,
                "mean_us": round3(latency.mean),
            }),
        );
    }

    pub fn usage(&mut self, usage: &Usage) {
        if let Some(cpu) = usage.broker_cpu_seconds {
            let cores = usage.broker_cores().unwrap_or(0.0);
            self.add(
                "broker CPU",
                format!("{cpu:.2} s ({cores:.2} cores)"),
                "broker_cpu_seconds",
                json!(round3(cpu)),
            );
        }
        if let Some(rss) = usage.broker_peak_rss_bytes {
            self.add(
                "broker peak RSS",
                format_bytes(rss),
                "broker_peak_rss_bytes",
                json!(rss),
            );
        }
        if let Some(cpu) = usage.client_cpu_seconds {
            let cores = usage.client_cores().unwrap_or(0.0);
            self.add(
                "bench CPU",
                format!("{cpu:.2} s ({cores:.2} cores)"),
                "client_cpu_seconds",
                json!(round3(cpu)),
            );
            self.add_json("client_cores", json!(round3(cores)));
        }
        self.add_json("wall_seconds", json!(round3(usage.elapsed.as_secs_f64())));
    }

    /// The aligned two-column table.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|(label, value)| vec![label.clone(), value.clone()])
            .collect();
        crate::table::render(&["METRIC", "VALUE"], &rows)
    }

    /// One line of JSON.
    pub fn json(&self) -> String {
        let mut line = Value::Object(self.json.clone()).to_string();
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (123456, "123,456"),
            (1234567, "1,234,567"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_count(*value), *expected);
        }
    }

    #[test]
    fn bytes() {
        let cases: &[(u64, &str)] = &[
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (2 << 30, "2.0 GiB"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_bytes(*value), *expected);
        }
    }

    #[test]
    fn millis() {
        let cases: &[(u64, &str)] = &[
            (0, "0.00 ms"),
            (420, "0.42 ms"),
            (1_234, "1.23 ms"),
            (12_345, "12.3 ms"),
            (123_456, "123 ms"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_millis(*value), *expected);
        }
    }

    #[test]
    fn rates() {
        let throughput = Throughput {
            records: 1000,
            bytes: 2_000_000,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(throughput.records_per_second(), 2000.0);
        assert_eq!(throughput.megabytes_per_second(), 4.0);
        let instant = Throughput {
            elapsed: Duration::ZERO,
            ..throughput
        };
        assert_eq!(instant.records_per_second(), 0.0);
    }

    #[test]
    fn latency_quantiles() {
        let mut histogram = latency_histogram();
        assert_eq!(Latency::from_histogram(&histogram), None);
        for micros in 1..=1000 {
            histogram.saturating_record(micros);
        }
        histogram.saturating_record(LATENCY_MAX_MICROS * 10);
        let latency = Latency::from_histogram(&histogram).expect("recorded");
        assert_eq!(latency.count, 1001);
        assert_eq!(latency.p50, 501);
        assert_eq!(latency.p99, 991);
        assert!(latency.max >= LATENCY_MAX_MICROS);
    }

    #[test]
    fn report_table_and_json_agree() {
        let mut report = Report::new("produce");
        report.throughput(&Throughput {
            records: 2000,
            bytes: 2_048_000,
            elapsed: Duration::from_secs(2),
        });
        let mut histogram = latency_histogram();
        histogram.saturating_record(1500);
        report.latency(
            "ack latency",
            "ack_latency",
            Latency::from_histogram(&histogram),
        );
        let table = report.table();
        assert!(table.starts_with("METRIC"), "{table}");
        let rows: Vec<String> = table
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        for expected in ["records/s 1,000", "MB/s 1.0", "ack latency p99 1.50 ms"] {
            assert!(
                rows.iter().any(|row| row == expected),
                "{expected}: {table}"
            );
        }
        let value: Value = serde_json::from_str(&report.json()).expect("valid JSON");
        assert_eq!(value["mode"], "produce");
        assert_eq!(value["records_per_second"], 1000.0);
        assert_eq!(value["megabytes_per_second"], 1.024);
        assert_eq!(value["ack_latency"]["p99_us"], 1500);
    }
}
