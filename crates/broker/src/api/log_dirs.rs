//! DescribeLogDirs: each partition's size in the (single) log directory.
//!
//! Offline partitions are left out. Kafka lists only the logs its
//! `LogManager` holds, and a log that failed leaves it with its whole
//! directory, which is then reported with KAFKA_STORAGE_ERROR and no
//! topics. Gregor takes single partitions offline and keeps serving the
//! directory, so the directory answers NONE and lists what it serves, and
//! an offline partition is absent as it would be from Kafka's answer.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::state::BrokerState;

pub fn handle(state: &BrokerState, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let all = state.partitions.topics();
    let mut wanted: Vec<(String, Vec<i32>)> = match request.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
        None => all
            .values()
            .map(|t| (t.image.name.clone(), t.partitions.iter().map(|p| p.index).collect()))
            .collect(),
    };
    wanted.sort();
    let topics = wanted
        .into_iter()
        .filter_map(|(name, indexes)| {
            let topic = all.get(&name)?;
            // A topic with no partition left online has no log here.
            if topic.partitions.iter().all(|p| p.is_offline()) {
                return None;
            }
            let partitions: Vec<_> = indexes
                .into_iter()
                .filter_map(|index| topic.partitions.get(usize::try_from(index).ok()?))
                .filter(|p| !p.is_offline())
                .map(|p| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(p.log.size_bytes() as i64)
                })
                .collect();
            Some(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions),
            )
        })
        .collect();
    let (total_bytes, usable_bytes) = volume_bytes(state.partitions.log_dir()).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(state.partitions.log_dir().display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Size and free space of the volume holding `dir`.
fn volume_bytes(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stats` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block = stats.f_frsize as i64;
    Some((stats.f_blocks as i64 * block, stats.f_bavail as i64 * block))
}
