//! `log.cleaner.io.max.bytes.per.second` (Kafka's `Throttler`): cleaner
//! threads report the bytes they read and write; every 300 ms the observed
//! rate is compared with the limit and the reporting thread sleeps long
//! enough to bring the period's average down to it. One throttler is shared
//! by all cleaner threads, so the limit is for the whole broker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CHECK_INTERVAL: Duration = Duration::from_millis(300);
/// Sleeps are cut into slices this long to notice a stop request.
const SLEEP_SLICE: Duration = Duration::from_millis(100);

pub struct Throttler {
    bytes_per_second: f64,
    period: Mutex<Period>,
}

struct Period {
    start: Instant,
    observed_bytes: f64,
}

impl Throttler {
    /// A throttler for `bytes_per_second`; infinite, NaN or non-positive
    /// rates never throttle (Kafka's default is Double.MAX_VALUE).
    pub fn new(bytes_per_second: f64) -> Throttler {
        Throttler {
            bytes_per_second,
            period: Mutex::new(Period {
                start: Instant::now(),
                observed_bytes: 0.0,
            }),
        }
    }

    fn unlimited(&self) -> bool {
        !(self.bytes_per_second.is_finite() && self.bytes_per_second > 0.0) || self.bytes_per_second >= 1e300
    }

    /// Records `bytes` of cleaner I/O and sleeps if the rate is above the
    /// limit. Other cleaner threads wait too (the lock is held while
    /// sleeping, as in Kafka), so together they stay under it. Returns early
    /// once `stop` is set.
    pub fn maybe_throttle(&self, bytes: u64, stop: Option<&AtomicBool>) {
        if self.unlimited() || bytes == 0 {
            return;
        }
        let mut period = self.period.lock().unwrap_or_else(|e| e.into_inner());
        period.observed_bytes += bytes as f64;
        let elapsed = period.start.elapsed();
        if elapsed < CHECK_INTERVAL {
            return;
        }
        let rate = period.observed_bytes / elapsed.as_secs_f64();
        if rate > self.bytes_per_second {
            let needed = Duration::from_secs_f64(period.observed_bytes / self.bytes_per_second);
            let mut sleep = needed.saturating_sub(elapsed);
            tracing::trace!(
                rate,
                limit = self.bytes_per_second,
                ?sleep,
                "throttling the log cleaner"
            );
            while !sleep.is_zero() && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                let slice = sleep.min(SLEEP_SLICE);
                std::thread::sleep(slice);
                sleep -= slice;
            }
        }
        period.start = Instant::now();
        period.observed_bytes = 0.0;
    }
}

impl std::fmt::Debug for Throttler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttler")
            .field("bytes_per_second", &self.bytes_per_second)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate_down() {
        let throttler = Throttler::new(1_000_000.0);
        let start = Instant::now();
        // 600 KB at 1 MB/s: about 0.6 s, whatever the chunking.
        for _ in 0..60 {
            throttler.maybe_throttle(10_000, None);
            std::thread::sleep(Duration::from_millis(1));
        }
        throttler.maybe_throttle(1, None);
        std::thread::sleep(CHECK_INTERVAL);
        throttler.maybe_throttle(1, None);
        assert!(start.elapsed() >= Duration::from_millis(500), "{:?}", start.elapsed());
    }

    #[test]
    fn unlimited_never_sleeps_and_stop_cuts_sleeps_short() {
        let unlimited = Throttler::new(f64::MAX);
        let start = Instant::now();
        unlimited.maybe_throttle(u64::MAX, None);
        assert!(start.elapsed() < Duration::from_millis(100));
        let slow = Throttler::new(1.0);
        let stop = AtomicBool::new(true);
        std::thread::sleep(CHECK_INTERVAL);
        slow.maybe_throttle(1_000_000, Some(&stop));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
