//! The log cleaner (Kafka's `LogCleaner` and `LogCleanerManager`):
//! `log.cleaner.threads` workers, each of which picks the dirtiest log of a
//! topic whose `cleanup.policy` includes `compact` (above the topic's
//! `min.cleanable.dirty.ratio`, or overdue by `max.compaction.lag.ms`),
//! cleans it on a blocking thread, and backs off `log.cleaner.backoff.ms`
//! when nothing is dirty enough. The workers share the offset map memory
//! (`log.cleaner.dedupe.buffer.size` split between them) and one I/O
//! throttle (`log.cleaner.io.max.bytes.per.second`). A log whose cleaning
//! fails is left alone until the broker restarts (Kafka's uncleanable
//! partitions); shutdown abandons cleanings in progress, leaving each log as
//! it was.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_log::{CleanOptions, CleanOutcome, Throttler};
use tokio::sync::watch;
use uuid::Uuid;

use crate::api::{blocking, now_ms};
use crate::config::{BrokerConfig, ConfigError};
use crate::partitions::Partition;
use crate::state::BrokerState;
use crate::topic_config::{effective, find};

/// The broker's cleaner settings, with Kafka's names.
#[derive(Debug, Clone)]
struct Settings {
    /// `log.cleaner.threads`
    threads: usize,
    /// `log.cleaner.backoff.ms`
    backoff: Duration,
    /// `log.cleaner.dedupe.buffer.size` / threads
    dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.size` / threads
    io_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor`
    load_factor: f64,
    /// `log.cleaner.io.max.bytes.per.second`, shared by the workers.
    throttler: Arc<Throttler>,
}

impl Settings {
    /// `None` when `log.cleaner.enable` is false or there are no threads.
    fn from_config(config: &BrokerConfig) -> Result<Option<Settings>, ConfigError> {
        let threads = config.parse::<usize>("log.cleaner.threads")?;
        if !config.parse::<bool>("log.cleaner.enable")? || threads == 0 {
            return Ok(None);
        }
        Ok(Some(Settings {
            threads,
            backoff: Duration::from_millis(config.parse::<u64>("log.cleaner.backoff.ms")?),
            dedupe_buffer_bytes: config.parse::<usize>("log.cleaner.dedupe.buffer.size")? / threads,
            io_buffer_bytes: (config.parse::<usize>("log.cleaner.io.buffer.size")? / threads).max(1),
            load_factor: config.parse::<f64>("log.cleaner.io.buffer.load.factor")?,
            throttler: Arc::new(Throttler::new(
                config.parse::<f64>("log.cleaner.io.max.bytes.per.second")?,
            )),
        }))
    }
}

/// A partition of one incarnation of a topic.
type PartitionKey = (Uuid, i32);

/// What the workers share (Kafka's `LogCleanerManager` state).
#[derive(Default)]
struct Shared {
    /// Logs being cleaned; held while choosing, so two workers never pick
    /// the same log.
    in_progress: Mutex<HashSet<PartitionKey>>,
    /// Logs whose cleaning failed.
    uncleanable: Mutex<HashSet<PartitionKey>>,
}

/// Runs the cleaner until `stopped` turns true.
pub async fn run(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    let settings = match Settings::from_config(state.config()) {
        Ok(Some(settings)) => settings,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%error, "the log cleaner does not start");
            return;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared::default());
    let workers: Vec<_> = (0..settings.threads)
        .map(|_| {
            tokio::spawn(worker(
                state.clone(),
                settings.clone(),
                shared.clone(),
                stop.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::Release);
    for worker in workers {
        let _ = worker.await;
    }
}

async fn worker(
    state: Arc<BrokerState>,
    settings: Settings,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let work = (state.clone(), settings.clone(), shared.clone(), stop.clone());
        let cleaned = blocking(move || {
            let (state, settings, shared, stop) = work;
            clean_dirtiest(&state, &settings, &shared, &stop)
        })
        .await;
        if *stopped.borrow() {
            return;
        }
        if !cleaned {
            tokio::select! {
                _ = tokio::time::sleep(settings.backoff) => {}
                _ = stopped.changed() => return,
            }
        }
    }
}

/// The cleaner options a topic's configuration gives.
fn options_for(
    state: &BrokerState,
    configs: &std::collections::BTreeMap<String, String>,
    settings: &Settings,
    stop: &Arc<AtomicBool>,
) -> (CleanOptions, f64, bool) {
    let setting = |name: &str| effective(find(name).expect("known topic config"), configs, state.config()).0;
    let number = |name: &str, default: i64| setting(name).trim().parse::<i64>().unwrap_or(default);
    let compact = setting("cleanup.policy")
        .split(',')
        .any(|policy| policy.trim() == "compact");
    let options = CleanOptions {
        delete_retention_ms: number("delete.retention.ms", 86_400_000),
        min_compaction_lag_ms: number("min.compaction.lag.ms", 0),
        max_compaction_lag_ms: number("max.compaction.lag.ms", i64::MAX),
        dedupe_buffer_bytes: settings.dedupe_buffer_bytes,
        dedupe_buffer_load_factor: settings.load_factor,
        io_buffer_bytes: settings.io_buffer_bytes,
        throttler: Some(settings.throttler.clone()),
        stop: Some(stop.clone()),
        crash_after: None,
    };
    let min_ratio = setting("min.cleanable.dirty.ratio")
        .trim()
        .parse::<f64>()
        .unwrap_or(0.5);
    (options, min_ratio, compact)
}

/// Kafka's `grabFilthiestCompactedLog` and one cleaning of it. Returns
/// whether a log was cleaned (the worker then looks for the next at once).
fn clean_dirtiest(state: &BrokerState, settings: &Settings, shared: &Shared, stop: &Arc<AtomicBool>) -> bool {
    let now = now_ms();
    let chosen = {
        let mut in_progress = shared.in_progress.lock().unwrap_or_else(|e| e.into_inner());
        let uncleanable = shared.uncleanable.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut dirtiest: Option<(f64, PartitionKey, Arc<Partition>, CleanOptions)> = None;
        for topic in state.partitions.topics().values() {
            let (options, min_ratio, compact) = options_for(state, &topic.image.configs, settings, stop);
            if !compact {
                continue;
            }
            for partition in &topic.partitions {
                let key = (topic.image.id, partition.index);
                // Kafka's cleaner drops the logs of an offline directory.
                if in_progress.contains(&key) || uncleanable.contains(&key) || partition.is_offline() {
                    continue;
                }
                match partition.log.cleanable(&options, now) {
                    Ok(info) if info.needs_cleaning(min_ratio) => {
                        let ratio = info.dirty_ratio();
                        if dirtiest.as_ref().is_none_or(|(best, ..)| ratio > *best) {
                            dirtiest = Some((ratio, key, partition.clone(), options.clone()));
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "cannot measure the log's dirty ratio");
                    }
                }
            }
        }
        let (ratio, key, partition, options) = match dirtiest {
            Some(chosen) => chosen,
            None => return false,
        };
        in_progress.insert(key);
        (ratio, key, partition, options)
    };
    let (ratio, key, partition, options) = chosen;
    tracing::debug!(topic = %partition.topic, partition = partition.index, ratio, "cleaning the dirtiest log");
    let result = partition.log.clean(&options, now);
    shared
        .in_progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
    match result {
        Ok(stats) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, ?stats, "log cleaner round");
            stats.outcome == CleanOutcome::Cleaned
        }
        Err(error) => {
            if !stop.load(Ordering::Acquire) {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "cleaning failed; the log is left uncleaned until restart");
                shared.uncleanable.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
            }
            false
        }
    }
}
