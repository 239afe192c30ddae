//! `log.cleaner.io.max.bytes.per.second` (Kafka's `Throttler`): cleaner
//! threads report the bytes they read and write, and a thread that is ahead
//! of the limit sleeps until the bytes of the current period fit it. A
//! period lasts at least 300 ms and ends once the rate is back under the
//! limit, so idle time earns no credit beyond it. (Kafka checks the rate
//! only every 300 ms; a cleaning shorter than that would never be
//! throttled.) One throttler is shared by all cleaner threads, so the limit
//! is for the whole broker.

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

    /// Records `bytes` of cleaner I/O and sleeps while the period's bytes
    /// are ahead of the limit. Other cleaner threads wait too (the lock is
    /// held while sleeping, as in Kafka), so together they stay under it.
    /// Returns early once `stop` is set.
    pub fn maybe_throttle(&self, bytes: u64, stop: Option<&AtomicBool>) {
        if self.unlimited() || bytes == 0 {
            return;
        }
        let mut period = self.period.lock().unwrap_or_else(|e| e.into_inner());
        period.observed_bytes += bytes as f64;
        let elapsed = period.start.elapsed();
        let needed = Duration::from_secs_f64(period.observed_bytes / self.bytes_per_second);
        let mut sleep = needed.saturating_sub(elapsed);
        if !sleep.is_zero() {
            tracing::trace!(limit = self.bytes_per_second, ?sleep, "throttling the log cleaner");
        }
        while !sleep.is_zero() && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            let slice = sleep.min(SLEEP_SLICE);
            std::thread::sleep(slice);
            sleep -= slice;
        }
        if period.start.elapsed() >= CHECK_INTERVAL {
            period.start = Instant::now();
            period.observed_bytes = 0.0;
        }
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
    fn holds_the_rate_down_from_the_first_bytes() {
        let throttler = Throttler::new(1_000_000.0);
        let start = Instant::now();
        // 500 KB at 1 MB/s: half a second, however it is chunked.
        for _ in 0..50 {
            throttler.maybe_throttle(10_000, None);
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    }

    #[test]
    fn idle_time_earns_no_lasting_credit() {
        let throttler = Throttler::new(1_000_000.0);
        throttler.maybe_throttle(1, None);
        std::thread::sleep(CHECK_INTERVAL * 2);
        let start = Instant::now();
        for _ in 0..100 {
            throttler.maybe_throttle(10_000, None);
        }
        // 1 MB: at most the last period's credit (0.6 s) comes free.
        assert!(start.elapsed() >= Duration::from_millis(350), "{:?}", start.elapsed());
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
