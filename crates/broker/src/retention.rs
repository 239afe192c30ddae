//! The retention task: every `log.retention.check.interval.ms`, each log of
//! a topic whose `cleanup.policy` includes `delete` loses the old segments
//! that `retention.ms` and `retention.bytes` no longer cover. Every second
//! it also removes what waited out its `file.delete.delay.ms`: the
//! `.deleted` files of segments that left a log (retention, DeleteRecords,
//! compaction) and the `-delete` directories of deleted topics.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{blocking, now_ms};
use crate::state::BrokerState;
use crate::topic_config::{effective, find};

/// How often the files and directories waiting for `file.delete.delay.ms`
/// are checked. Kafka schedules each deletion for its exact time; the log
/// crate runs no timers, so here a deletion runs up to this much late.
const FILE_DELETE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(state: Arc<BrokerState>, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut file_deletions = tokio::time::interval(FILE_DELETE_CHECK_INTERVAL);
    file_deletions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let worker = state.clone();
                blocking(move || apply(&worker)).await;
            }
            _ = file_deletions.tick() => {
                let worker = state.clone();
                blocking(move || delete_expired_files(&worker)).await;
            }
            _ = stopped.changed() => return,
        }
    }
}

fn apply(state: &BrokerState) {
    let setting = |name: &str, configs| effective(find(name).expect("known topic config"), configs, state.config()).0;
    let now = now_ms();
    for topic in state.partitions.topics().values() {
        let configs = &topic.image.configs;
        if !setting("cleanup.policy", configs)
            .split(',')
            .any(|policy| policy.trim() == "delete")
        {
            continue;
        }
        let retention_ms = setting("retention.ms", configs).parse::<i64>().unwrap_or(-1);
        let retention_bytes = setting("retention.bytes", configs).parse::<i64>().unwrap_or(-1);
        if retention_ms < 0 && retention_bytes < 0 {
            continue;
        }
        for partition in &topic.partitions {
            if let Err(error) = partition.log.apply_retention(retention_ms, retention_bytes, now) {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "retention failed");
            }
        }
    }
}

fn delete_expired_files(state: &BrokerState) {
    let now = now_ms();
    for topic in state.partitions.topics().values() {
        for partition in &topic.partitions {
            if let Err(error) = partition.log.delete_expired_files(now) {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "deleting retired segment files failed");
            }
        }
    }
    state.partitions.delete_expired_topic_dirs(now);
}
