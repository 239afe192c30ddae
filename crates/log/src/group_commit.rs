//! Group commit: many appenders waiting for durability share one fsync.
//!
//! Leader/follower. A caller whose offset is not yet durable and finds no
//! sync in flight leads: it fsyncs everything appended so far, outside the
//! lock. A caller that finds a sync in flight queues itself and parks. When
//! the sync ends, the leader decides, under the lock, the fate of every
//! queued caller its sync covered and wakes exactly those, which return
//! without taking the lock again (a condvar's `notify_all` woke every
//! waiter only for them to queue on the mutex).
//!
//! The next sync gathers. The callers just woken are about to append again
//! (a producer with acks=all sends its next batch once this one is
//! acknowledged), so the next sync waits for them: the last of them to come
//! back leads it at once, and a queued caller stands by to lead it instead
//! if they are not all back within the last sync's duration (waiting longer
//! would cost more than syncing them next time). Handing the lead on at
//! once instead splits the appenders into two groups that take turns, each
//! fsync covering half of them: on 2 cores, waking 15 threads and letting
//! them append again takes about as long as the fsync (docs/benchmarks.md).
//! A gather that times out means the callers do not come back at once
//! (producers across a network): gathering then pauses for a number of
//! syncs that doubles with each timeout, so they do not pay for waiting in
//! vain.
//!
//! A failed sync is final: after a failed fsync nothing is known about what
//! reached the disk, and on Linux a second fsync may report success for
//! pages whose write-back failed. Every queued caller and every later one
//! gets the error, and no caller retries the sync (the log goes offline,
//! Kafka's `LogDirFailureChannel`).

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// A queued caller's fate, set under the lock.
const PENDING: u8 = 0;
const DURABLE: u8 = 1;
const LEAD: u8 = 2;
const FAILED: u8 = 3;
/// Leads the next sync if the gather times out.
const STANDBY: u8 = 4;

/// The longest pause of gathering after timeouts, in syncs: about a second
/// at the few thousand fsyncs a second of a virtual disk.
const MAX_GATHER_PAUSE: u32 = 4096;

/// One thread's parking spot, reused by every `sync_to` it makes: a thread
/// waits on one group commit at a time.
struct Waiter {
    thread: Thread,
    verdict: AtomicU8,
}

thread_local! {
    static WAITER: Arc<Waiter> = Arc::new(Waiter {
        thread: thread::current(),
        verdict: AtomicU8::new(PENDING),
    });
}

struct Queued {
    target: i64,
    waiter: Arc<Waiter>,
}

/// The failed sync's error, which `io::Error` cannot clone, for every caller.
struct Failure {
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn error(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

struct State {
    /// Every offset below this is durable.
    durable_offset: i64,
    /// A leader is syncing, or has been chosen and is about to.
    syncing: bool,
    /// Callers parked until a sync decides their fate.
    queued: Vec<Queued>,
    failure: Option<Failure>,
    /// Callers the last sync released that have not called again.
    returning: usize,
    /// The queued caller in `STANDBY`, and when it stops waiting.
    standby: Option<(Arc<Waiter>, Instant)>,
    last_sync: Duration,
    /// Syncs left that hand the lead on at once rather than gather.
    gather_pause: u32,
    /// The pause after the next gather that times out.
    next_gather_pause: u32,
}

pub(crate) struct GroupCommit {
    state: Mutex<State>,
}

impl GroupCommit {
    pub fn new(durable_offset: i64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State {
                durable_offset,
                syncing: false,
                queued: Vec::new(),
                failure: None,
                returning: 0,
                standby: None,
                last_sync: Duration::ZERO,
                gather_pause: 0,
                next_gather_pause: 1,
            }),
        }
    }

    pub fn durable_offset(&self) -> i64 {
        self.lock().durable_offset
    }

    /// Returns once every offset below `target` is durable. `sync_all`
    /// fsyncs everything appended so far and returns the offset below which
    /// that is; it runs on at most one thread at a time.
    pub fn sync_to(&self, target: i64, sync_all: impl Fn() -> io::Result<i64>) -> io::Result<()> {
        loop {
            let mut state = self.lock();
            if state.durable_offset >= target {
                return Ok(());
            }
            if let Some(failure) = &state.failure {
                return Err(failure.error());
            }
            state.returning = state.returning.saturating_sub(1);
            if !state.syncing && state.returning == 0 {
                // Alone, or the last caller back from the last sync. The
                // standby, relieved, finds out at its deadline and follows.
                state.syncing = true;
                if let Some((standby, _)) = state.standby.take() {
                    standby.verdict.store(PENDING, Ordering::Release);
                    state.next_gather_pause = 1;
                }
                drop(state);
            } else {
                match self.park(state, target) {
                    DURABLE => return Ok(()),
                    FAILED => continue, // the loop returns the stored error
                    verdict => debug_assert_eq!(verdict, LEAD),
                }
            }
            // The leader. Its target is normally covered now; if not, the
            // loop makes it follow or lead again.
            let started = Instant::now();
            let result = sync_all();
            self.finish_sync(&result, started.elapsed());
            result?;
        }
    }

    /// Queues the caller and parks it until its fate is decided: `DURABLE`,
    /// `FAILED` or `LEAD`.
    fn park(&self, mut state: MutexGuard<'_, State>, target: i64) -> u8 {
        let waiter = WAITER.with(Arc::clone);
        waiter.verdict.store(PENDING, Ordering::Relaxed);
        state.queued.push(Queued {
            target,
            waiter: waiter.clone(),
        });
        if !state.syncing && state.standby.is_none() {
            // Gathering: the first caller back stands by.
            waiter.verdict.store(STANDBY, Ordering::Relaxed);
            let deadline = Instant::now() + state.last_sync;
            state.standby = Some((waiter.clone(), deadline));
        }
        drop(state);
        loop {
            // `park` may return without an unpark (or for an unpark meant
            // for an earlier wait of this thread): the verdict decides.
            match waiter.verdict.load(Ordering::Acquire) {
                PENDING => thread::park(),
                STANDBY => {
                    if self.stand_by(&waiter) {
                        return LEAD;
                    }
                }
                verdict => return verdict,
            }
        }
    }

    /// Waits for the gather to end: returns true if it timed out and the
    /// caller now leads, false once the last caller back leads instead.
    fn stand_by(&self, waiter: &Arc<Waiter>) -> bool {
        let deadline = match &self.lock().standby {
            Some((standby, deadline)) if Arc::ptr_eq(standby, waiter) => *deadline,
            _ => return false, // relieved meanwhile
        };
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::park_timeout(deadline - now);
            if waiter.verdict.load(Ordering::Acquire) != STANDBY {
                return false;
            }
        }
        let mut state = self.lock();
        if waiter.verdict.load(Ordering::Relaxed) != STANDBY {
            return false;
        }
        waiter.verdict.store(LEAD, Ordering::Relaxed);
        state.standby = None;
        state.syncing = true;
        state.returning = 0;
        state.gather_pause = state.next_gather_pause;
        state.next_gather_pause = (state.next_gather_pause * 2).min(MAX_GATHER_PAUSE);
        let at = state
            .queued
            .iter()
            .position(|queued| Arc::ptr_eq(&queued.waiter, waiter));
        state.queued.swap_remove(at.expect("the standby is queued"));
        true
    }

    /// Records the sync's outcome, decides every queued caller it covered,
    /// and sets up the next sync: a gather, or a hand-off to a queued caller.
    fn finish_sync(&self, result: &io::Result<i64>, took: Duration) {
        let mut wake = Vec::new();
        {
            let mut state = self.lock();
            state.last_sync = took;
            match result {
                Ok(durable) => state.durable_offset = state.durable_offset.max(*durable),
                Err(error) => {
                    state.failure = Some(Failure {
                        kind: error.kind(),
                        message: error.to_string(),
                    })
                }
            }
            let (verdict, durable) = match state.failure {
                Some(_) => (FAILED, i64::MAX),
                None => (DURABLE, state.durable_offset),
            };
            wake.extend(
                state
                    .queued
                    .extract_if(.., |queued| queued.target <= durable)
                    .map(|queued| queued.waiter)
                    .inspect(|waiter| waiter.verdict.store(verdict, Ordering::Release)),
            );
            // The decided callers and the leader itself.
            let released = wake.len() + 1;
            let gather = state.gather_pause == 0;
            state.gather_pause = state.gather_pause.saturating_sub(1);
            state.returning = if gather { released } else { 0 };
            // Whoever is still queued appended while the fsync ran.
            match state.queued.last().map(|queued| queued.waiter.clone()) {
                Some(next) if gather => {
                    next.verdict.store(STANDBY, Ordering::Release);
                    state.standby = Some((next.clone(), Instant::now() + took));
                    state.syncing = false;
                    wake.push(next);
                }
                Some(next) => {
                    state.queued.pop();
                    next.verdict.store(LEAD, Ordering::Release);
                    wake.insert(0, next);
                }
                None => state.syncing = false,
            }
        }
        for waiter in wake {
            waiter.thread.unpark();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize};

    #[test]
    fn already_durable_offsets_do_not_sync() {
        let group = GroupCommit::new(10);
        group.sync_to(10, || panic!("no sync needed")).unwrap();
        group.sync_to(11, || Ok(11)).unwrap();
        assert_eq!(group.durable_offset(), 11);
    }

    #[test]
    fn concurrent_waiters_are_acknowledged_only_after_a_sync_covering_them() {
        // A model disk: `appended` is the log end offset, `synced` what the
        // last completed "fsync" made durable. Every caller must return only
        // once a completed sync covered its offset, syncs never overlap, and
        // waiters share them.
        let group = Arc::new(GroupCommit::new(0));
        let appended = Arc::new(AtomicI64::new(0));
        let synced = Arc::new(AtomicI64::new(0));
        let syncing = Arc::new(AtomicBool::new(false));
        let syncs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (group, appended, synced, syncing, syncs) = (
                    group.clone(),
                    appended.clone(),
                    synced.clone(),
                    syncing.clone(),
                    syncs.clone(),
                );
                thread::spawn(move || {
                    for _ in 0..200 {
                        let offset = appended.fetch_add(1, Ordering::SeqCst) + 1;
                        group
                            .sync_to(offset, || {
                                assert!(!syncing.swap(true, Ordering::SeqCst), "overlapping syncs");
                                syncs.fetch_add(1, Ordering::SeqCst);
                                let upto = appended.load(Ordering::SeqCst);
                                thread::yield_now();
                                synced.fetch_max(upto, Ordering::SeqCst);
                                syncing.store(false, Ordering::SeqCst);
                                Ok(upto)
                            })
                            .unwrap();
                        assert!(synced.load(Ordering::SeqCst) >= offset, "acknowledged before durable");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(group.durable_offset(), 3200);
        assert!(syncs.load(Ordering::SeqCst) < 3200);
    }

    #[test]
    fn a_caller_left_queued_leads_when_the_released_ones_do_not_come_back() {
        // The leader's sync covers offset 1 only; the caller waiting for 2
        // stands by for the leader to append again, which it never does.
        let group = Arc::new(GroupCommit::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let leader = {
            let (group, release) = (group.clone(), release.clone());
            thread::spawn(move || {
                group.sync_to(1, || {
                    wait_until(|| release.load(Ordering::SeqCst));
                    Ok(1)
                })
            })
        };
        wait_until(|| group.lock().syncing);
        let follower = {
            let group = group.clone();
            thread::spawn(move || group.sync_to(2, || Ok(2)))
        };
        wait_until(|| group.lock().queued.len() == 1);
        release.store(true, Ordering::SeqCst);
        leader.join().unwrap().unwrap();
        follower.join().unwrap().unwrap();
        assert_eq!(group.durable_offset(), 2);
        // It led by timing out, which pauses the next gather for longer.
        assert_eq!(group.lock().next_gather_pause, 2);
    }

    #[test]
    fn a_failed_sync_fails_every_waiter_and_every_later_caller() {
        let group = Arc::new(GroupCommit::new(0));
        let followers = 7;
        let release = Arc::new(AtomicBool::new(false));
        let leader = {
            let (group, release) = (group.clone(), release.clone());
            thread::spawn(move || {
                group.sync_to(1, || {
                    wait_until(|| release.load(Ordering::SeqCst));
                    Err(io::Error::other("disk gone"))
                })
            })
        };
        wait_until(|| group.lock().syncing);
        let waiters: Vec<_> = (0..followers)
            .map(|i| {
                let group = group.clone();
                // Some covered by the failing sync, some not: all fail, and
                // none leads a retry.
                thread::spawn(move || group.sync_to(1 + i % 2, || panic!("no sync after a failure")))
            })
            .collect();
        wait_until(|| group.lock().queued.len() == followers as usize);
        release.store(true, Ordering::SeqCst);
        assert_eq!(leader.join().unwrap().unwrap_err().to_string(), "disk gone");
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap().unwrap_err().to_string(), "disk gone");
        }
        assert_eq!(group.durable_offset(), 0);
        let later = group.sync_to(1, || panic!("no sync after a failure"));
        assert_eq!(later.unwrap_err().kind(), io::ErrorKind::Other);
    }

    /// Polls, for conditions another thread makes true; fails after 10 s.
    fn wait_until(condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out");
            thread::sleep(Duration::from_millis(1));
        }
    }
}
