//! Counting and reporting: counters the hot threads bump, latency
//! histograms (HdrHistogram, microseconds, 3 significant digits), the
//! once-a-second progress line, and the summary (human or JSON).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::OutputOptions;

/// The largest latency recorded exactly: one hour, in microseconds.
/// Anything slower is counted as one hour.
const LATENCY_MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3).expect("valid histogram bounds")
}

/// What one side of a run (producer or consumer) has done so far. Shared
/// between the thread doing the work and the progress printer.
pub struct Counters {
    /// Records done: acknowledged (producer) or received (consumer).
    pub records: AtomicU64,
    /// Bytes of those records' values.
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    latency: Mutex<Latency>,
}

/// The whole run's latencies and those since the last progress line.
struct Latency {
    total: Histogram<u64>,
    window: Histogram<u64>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            latency: Mutex::new(Latency {
                total: latency_histogram(),
                window: latency_histogram(),
            }),
        }
    }
}

impl Counters {
    /// One record done, `value_bytes` long, after `latency` (if measured).
    pub fn record(&self, value_bytes: usize, latency: Option<Duration>) {
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(value_bytes as u64, Ordering::Relaxed);
        if let Some(latency) = latency {
            let micros = latency.as_micros().min(u128::from(LATENCY_MAX_MICROS)) as u64;
            let mut histograms = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
            histograms.total.saturating_record(micros);
            histograms.window.saturating_record(micros);
        }
    }

    /// One record failed; the first failure's message is kept for the summary.
    pub fn error(&self, message: impl FnOnce() -> String) {
        if self.errors.fetch_add(1, Ordering::Relaxed) == 0 {
            *self.first_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message());
        }
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Percentiles of the latencies since the last call, then starts a new window.
    fn take_window(&self) -> Option<Percentiles> {
        let mut histograms = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let percentiles = Percentiles::of(&histograms.window);
        histograms.window.reset();
        percentiles
    }

    pub fn latency(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
            .clone()
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// None for an empty histogram.
    pub fn of(histogram: &Histogram<u64>) -> Option<Percentiles> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        })
    }

    fn json(&self) -> Value {
        json!({ "p50": self.p50, "p99": self.p99, "p99_9": self.p999, "max": self.max, "mean": self.mean })
    }
}

/// One side's share of a progress line: its rate over the last second and,
/// if it measures latency, the window's percentiles.
pub struct ProgressMeter {
    label: &'static str,
    counters: Arc<Counters>,
    last_records: u64,
    last_bytes: u64,
}

impl ProgressMeter {
    pub fn new(label: &'static str, counters: Arc<Counters>) -> ProgressMeter {
        ProgressMeter {
            label,
            counters,
            last_records: 0,
            last_bytes: 0,
        }
    }

    fn line(&mut self, window: Duration) -> String {
        let records = self.counters.records();
        let bytes = self.counters.bytes.load(Ordering::Relaxed);
        let secs = window.as_secs_f64().max(1e-9);
        let mut line = format!(
            "{} {records} records, {:.0} records/s, {:.2} MB/s",
            self.label,
            (records - self.last_records) as f64 / secs,
            (bytes - self.last_bytes) as f64 / secs / 1e6,
        );
        self.last_records = records;
        self.last_bytes = bytes;
        if let Some(latency) = self.counters.take_window() {
            line += &format!(
                ", latency ms p50 {:.2} p99 {:.2} max {:.2}",
                latency.p50, latency.p99, latency.max
            );
        }
        let errors = self.counters.errors.load(Ordering::Relaxed);
        if errors > 0 {
            line += &format!(", {errors} errors");
        }
        line
    }
}

/// Prints a progress line on stderr every second until dropped.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(mode: &'static str, mut meters: Vec<ProgressMeter>, output: OutputOptions) -> Progress {
        if output.quiet {
            return Progress {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            let started = Instant::now();
            let mut last = started;
            // Wake at whole seconds since the start; a closed channel ends the loop.
            for tick in 1_u32.. {
                let due = started + Duration::from_secs(u64::from(tick));
                match stopped.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
                let now = Instant::now();
                let sides: Vec<String> = meters.iter_mut().map(|meter| meter.line(now - last)).collect();
                eprintln!("{mode} {:4.0} s: {}", (now - started).as_secs_f64(), sides.join("; "));
                last = now;
            }
        });
        Progress {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The result of a run, printed at its end.
pub struct Summary {
    pub mode: &'static str,
    pub topic: String,
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The latency the mode is about: delivery (produce) or end to end (e2e).
    pub latency: Option<(&'static str, Histogram<u64>)>,
    /// e2e also reports its producer's throughput and delivery latency.
    pub producer: Option<Box<Summary>>,
    /// Why the run fell short of what was asked, if it did.
    pub shortfall: Option<String>,
}

impl Summary {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    pub fn print(&self, output: OutputOptions) -> Result<()> {
        if output.json {
            println!("{}", serde_json::to_string(&self.json())?);
        } else {
            print!("{}", self.text());
        }
        Ok(())
    }

    /// Fails the command when records failed or fell short, after the
    /// summary has been printed: a benchmark with errors is no benchmark.
    pub fn check(&self) -> Result<()> {
        if let Some(producer) = &self.producer {
            producer.check()?;
        }
        if self.errors > 0 {
            bail!(
                "{} {} of the records failed; the first: {}",
                self.mode,
                self.errors,
                self.first_error.as_deref().unwrap_or("(unknown)")
            );
        }
        if let Some(shortfall) = &self.shortfall {
            bail!("{shortfall}");
        }
        Ok(())
    }

    fn json(&self) -> Value {
        let mut object = json!({
            "mode": self.mode,
            "topic": self.topic,
            "records": self.records,
            "bytes": self.bytes,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "records_per_sec": self.records_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "errors": self.errors,
        });
        if let Some((kind, histogram)) = &self.latency {
            object["latency_kind"] = json!(kind);
            object["latency_ms"] = Percentiles::of(histogram).map_or(Value::Null, |latency| latency.json());
        }
        if let Some(producer) = &self.producer {
            object["producer"] = producer.json();
        }
        if let Some(shortfall) = &self.shortfall {
            object["shortfall"] = json!(shortfall);
        }
        object
    }

    fn text(&self) -> String {
        let mut text = format!(
            "{}: {} records in {:.2} s: {:.0} records/s, {:.2} MB/s\n",
            self.mode,
            self.records,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec()
        );
        if let Some((kind, histogram)) = &self.latency
            && let Some(latency) = Percentiles::of(histogram)
        {
            text += &format!(
                "{}: {kind} latency ms: p50 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}, mean {:.2}\n",
                self.mode, latency.p50, latency.p99, latency.p999, latency.max, latency.mean
            );
        }
        if self.errors > 0 {
            text += &format!(
                "{}: {} errors, the first: {}\n",
                self.mode,
                self.errors,
                self.first_error.as_deref().unwrap_or("(unknown)")
            );
        }
        if let Some(producer) = &self.producer {
            text += &producer.text();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_keep_totals_and_windows() {
        let counters = Counters::default();
        counters.record(100, Some(Duration::from_micros(1500)));
        counters.record(100, Some(Duration::from_micros(2500)));
        counters.record(100, None);
        assert_eq!(counters.records(), 3);
        assert_eq!(counters.bytes.load(Ordering::Relaxed), 300);
        let window = counters.take_window().expect("two latencies");
        assert!((window.max - 2.5).abs() < 0.01, "{window:?}");
        assert!(counters.take_window().is_none(), "the window starts over");
        assert_eq!(counters.latency().len(), 2, "the total keeps everything");
        counters.error(|| "first".to_string());
        counters.error(|| "second".to_string());
        assert_eq!(counters.first_error().as_deref(), Some("first"));
    }

    #[test]
    fn summaries_report_rates_and_fail_on_errors() {
        let mut histogram = latency_histogram();
        histogram.record(2000).unwrap();
        let summary = Summary {
            mode: "produce",
            topic: "t".to_string(),
            records: 1000,
            bytes: 100_000,
            elapsed: Duration::from_millis(500),
            errors: 0,
            first_error: None,
            latency: Some(("delivery", histogram)),
            producer: None,
            shortfall: None,
        };
        assert_eq!(summary.records_per_sec(), 2000.0);
        assert_eq!(summary.mb_per_sec(), 0.2);
        let json = summary.json();
        assert_eq!(json["records"], 1000);
        assert_eq!(json["latency_ms"]["p99"], 2.0);
        assert!(summary.text().contains("delivery latency ms: p50 2.00"));
        assert!(summary.check().is_ok());
        let failed = Summary {
            errors: 1,
            first_error: Some("Broker: Not enough replicas".to_string()),
            ..summary
        };
        assert!(failed.check().is_err());
    }
}
